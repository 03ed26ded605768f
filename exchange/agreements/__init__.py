"""The parties of the exchange and the data-sharing agreements between them (`access.md`)."""
