"""Keys and encryption: the local keyring (KEKs and the audit signing key)."""
