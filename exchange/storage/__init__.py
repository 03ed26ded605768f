"""Blob stores for encrypted document content: `file` (embedded) and `s3` (production)."""
