"""Use cases the API composes: Temporal commands and multi-step operations (nothing here imports `api`)."""
