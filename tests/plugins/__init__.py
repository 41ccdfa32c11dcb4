"""Throwaway plug-ins (a source and an output) that live only in the test tree: they show that a
new source or output touches no production file but the registry
(tests/integration/test_plugins.py)."""
