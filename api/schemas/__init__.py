"""Wire models of the HTTP contract (request bodies and responses)."""
