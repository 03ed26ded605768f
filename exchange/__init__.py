"""SEND health-advice exchange: consent, advice requests, encrypted documents, audit."""

__version__ = "0.1.0"
