"""The `custody` command line, one module per command group."""
