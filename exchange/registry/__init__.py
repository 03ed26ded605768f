"""The operator's registry: organisations, agreements, OAuth clients and console users,
registered from a bootstrap file or the CLI (clients never register themselves). The
tables live with their domains (`agreements/`, `auth/`, `users/`); this package validates
and applies what the operator asks for."""
