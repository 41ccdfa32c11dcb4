"""Fast tests: the pure core and everything that needs no Azurite, loopback service or process."""
