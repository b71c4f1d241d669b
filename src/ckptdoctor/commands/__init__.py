"""One module per CLI command. Top-level imports stay light (click and the stdlib only)."""
