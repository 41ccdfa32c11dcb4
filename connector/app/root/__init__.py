"""The composition root: the container that builds every adapter and handler."""
