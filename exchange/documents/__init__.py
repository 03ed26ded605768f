"""Health-advice documents: encrypted content (Binary) and its metadata (DocumentReference)."""
