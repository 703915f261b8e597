"""Repositories: the only modules that issue SQL. Each takes an AsyncSession."""
