"""Entry points (Functions triggers, the CLI) and the composition root."""
