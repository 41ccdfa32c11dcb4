"""Flux → Azure DevOps GitOps connector (Azure Functions)."""

# The one version: the package name (scripts/package.py), `GET /api/health`, the User-Agent
# below and the CHANGELOG check (tests/e2e/test_release.py) read it here; pyproject.toml takes it
# from here too (`dynamic`). Bump it with the CHANGELOG's release header.
__version__ = "0.2.0"

# Product token of every HTTP client of ours (Azure DevOps, subscribers' webhooks).
USER_AGENT = f"flux-azdo-connector/{__version__}"
