"""Durable workflows, one per file, with their sandbox-safe contracts beside them."""
