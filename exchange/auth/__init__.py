"""Who is calling: OAuth clients (private_key_jwt) and their SMART scopes."""
