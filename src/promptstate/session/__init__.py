"""session layer."""

__all__: list[str] = []
