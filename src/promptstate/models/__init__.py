"""Public value types: templates, prompts, messages, variables, the run schema, redaction."""

__all__: list[str] = []
