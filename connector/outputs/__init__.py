"""Where observations go: commit statuses, Spektate, subscriber webhooks."""
