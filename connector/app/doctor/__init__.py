"""The doctor: every dependency checked with the app's own settings and identity.

Imports go one way: `check` (what a check says) ← the groups (`checks`, with `devops`, `links`
and `clusters`) ← `report` (runs every group, redacts, prints; the CLI and `GET /api/doctor`)."""
