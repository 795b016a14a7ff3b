"""One module per CLI command (see cli.py for the contract)."""
