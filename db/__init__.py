"""The system of record: ORM models, the engine, and the repositories (the only code that writes SQL)."""
