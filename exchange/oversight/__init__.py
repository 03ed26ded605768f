"""What an IG lead oversees across domains: the child view (consents, requests, documents
and who accessed them, for one child)."""
