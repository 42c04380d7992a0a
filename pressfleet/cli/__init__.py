"""The `pressfleet` command, one module per command group; `main.app` is the entry point."""
