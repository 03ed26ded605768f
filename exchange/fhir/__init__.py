"""FHIR R4 plumbing: OperationOutcome, validation, narratives, conformance artefacts."""
