"""The `rflow` command line: the one-command dev stack and the production entry points."""
