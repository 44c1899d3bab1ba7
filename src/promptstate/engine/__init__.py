"""Effects and sweeps, receiving an injected :class:`~promptstate.engine.ports.Runtime`."""

__all__: list[str] = []
