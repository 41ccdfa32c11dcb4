"""`python -m connector …`: the operations CLI (see `connector.cli`)."""

from connector.cli import main

raise SystemExit(main())
