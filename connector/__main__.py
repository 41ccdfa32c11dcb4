"""`python -m connector …`: the operations CLI (see `connector.cli`)."""

from connector.app.cli import main

raise SystemExit(main())
