"""`python -m exchange` is the `exchange` command."""

from exchange.cli import main

main()
