"""`python -m connector …`: the operations CLI (see `connector.app.cli.main`)."""

from connector.app.cli.main import main

raise SystemExit(main())
