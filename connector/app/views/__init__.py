"""Read views: the deployments view and the on-call pages.

`commits` parses every commit the views take (the one parser) and resolves a prefix;
`deployments_model` builds one commit's view from the store, `deployments_page` renders it as
HTML and `deployments` answers `GET /api/deployments/{commit}`; `ui_model`, `ui_pages` and `ui`
are the same three parts of the on-call pages."""
