"""End to end: the app as a process (embedded host, `make run`), a browser, the release."""
