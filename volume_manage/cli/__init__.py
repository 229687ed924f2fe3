"""The `starter.py` command line, one module per group of commands."""
