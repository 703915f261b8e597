"""The LLM layer: one provider interface, an Anthropic provider and an honest offline provider."""
