"""`python -m connector …`: the operations CLI (see `connector.app.cli`)."""

from connector.app.cli import main

raise SystemExit(main())
