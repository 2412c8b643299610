"""Keel LLM gateway: one front for every model provider, with token and cost accounting."""
