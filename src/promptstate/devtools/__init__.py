"""devtools layer."""

__all__: list[str] = []
