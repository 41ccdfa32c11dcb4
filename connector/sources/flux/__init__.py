"""Flux notification-controller: signed webhooks in, observations out."""
