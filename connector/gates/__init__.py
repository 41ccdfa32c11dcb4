"""Promotion gates: registration, correlation, evaluation, the task's story, completion."""
