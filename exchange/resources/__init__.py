"""Versioned FHIR resources: every version of every resource this service stores."""
