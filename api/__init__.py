"""The thin HTTP layer: validate, authorize, then call a workflow or a repository."""
