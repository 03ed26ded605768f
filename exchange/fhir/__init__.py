"""FHIR R4 plumbing: terminology, OperationOutcome, validation, conformance artefacts."""
