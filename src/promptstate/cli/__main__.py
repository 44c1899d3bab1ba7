"""``python -m promptstate.cli``."""

import sys

from promptstate.cli._main import main

__all__: list[str] = []

sys.exit(main())
