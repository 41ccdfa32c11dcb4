"""Integration tests: Azurite, the loopback Azure DevOps fake, real Functions objects."""
