"""runlog layer."""

__all__: list[str] = []
