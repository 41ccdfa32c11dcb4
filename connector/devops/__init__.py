"""Azure DevOps: routes with their api-versions, the REST client, its vocabulary."""
