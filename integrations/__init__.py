"""Clients of third-party systems (LLM, PSA); activities use them, workflows never do."""
