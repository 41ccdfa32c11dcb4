"""Argo CD notifications: `webhook` service posts in, observations out."""
