"""Shared fixtures. Every Store built during the suite checks that reducers never mutate."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

import promptstate as ps
from promptstate.core import store

# Session setup opens DuckDB (tens of ms on a loaded 2-core machine): no per-example deadline
settings.register_profile("promptstate", deadline=None)
settings.load_profile("promptstate")


def _immutability_check(store: store.Store) -> Callable[[Any], Any]:
    """Middleware: pickle the old state before each action and compare it afterwards."""

    def wrap(next_dispatch: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def dispatch(action: Any) -> Any:
            with store.lock:
                before = store.get_state()
                snapshot = pickle.dumps(before)
                result = next_dispatch(action)
                assert pickle.dumps(before) == snapshot, f"reducer mutated state on {action.type}"
            return result

        return dispatch

    return wrap


@pytest.fixture(autouse=True)
def _check_reducers_never_mutate(monkeypatch: pytest.MonkeyPatch) -> None:
    original = store.Store.__init__

    def init(
        self: store.Store, reducer: Any, state: Any, middleware: tuple[Any, ...] = ()
    ) -> None:
        original(self, reducer, state, (_immutability_check, *middleware))

    monkeypatch.setattr(store.Store, "__init__", init)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SUMMARIZE = ps.Prompt(
    id="summarize",
    messages=[ps.system("You are terse."), ps.user("Summarize for {{user_name}}: {{text}}")],
    variables={"text": ""},
)


@pytest.fixture
def session(tmp_path: Any) -> Iterator[ps.Session]:
    s = ps.Session(db=str(tmp_path / "runs.duckdb"))
    s.prompts.register(SUMMARIZE)
    yield s
    s.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Playwright's sync API keeps an event loop running on the main thread while its
    # session fixtures live; run browser tests last so asyncio.run() works elsewhere.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
