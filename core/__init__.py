"""Framework-free building blocks shared by the API, the worker and the CLI."""
