"""Reading the audit trail: the IG lead's searches, reads and exports (`audit.md`)."""
