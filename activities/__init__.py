"""Activities grouped by concern (persistence, llm, psa, notify); each class receives its clients."""
