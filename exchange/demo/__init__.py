"""The demo set: the spec's example organisations, agreement, clients and console users,
with freshly generated client key pairs."""
