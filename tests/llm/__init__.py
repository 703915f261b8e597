"""Tests of the LLM layer: providers, activities, usage ledger and its API."""
