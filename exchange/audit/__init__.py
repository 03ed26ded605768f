"""The tamper-evident audit trail (`audit.md`): append, seal into a hash chain, verify."""
