"""One module per command (or command group); pgsearch.cli loads them on first use."""
