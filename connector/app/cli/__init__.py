"""The command line: python -m connector <command>."""
