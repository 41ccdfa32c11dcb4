"""Read views: the deployments view and the on-call pages."""
