"""The registry: organisations, OAuth clients, data-sharing agreements and console users,
registered by the operator (bootstrap file or CLI); clients never register themselves."""
