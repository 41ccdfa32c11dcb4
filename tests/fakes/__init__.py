"""Fakes with real semantics for the connector's external systems."""
