"""The doctor: every dependency checked with the app's own settings and identity."""
