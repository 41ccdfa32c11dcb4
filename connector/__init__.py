"""Flux → Azure DevOps GitOps connector (Azure Functions)."""

__version__ = "0.1.0"
