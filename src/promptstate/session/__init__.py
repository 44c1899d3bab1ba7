"""The composition root: ``Session`` wires the layers; ``Instance`` is a thin handle."""

from promptstate.session.instance import Instance
from promptstate.session.session import Session

__all__ = ["Instance", "Session"]
