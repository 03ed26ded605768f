"""Advice requests: the statutory request for health advice as a FHIR Task, its clock and
its workflow (`advice-requests.md`)."""
