"""Sandbox-safe pydantic models exchanged between workflows, activities and the API."""
