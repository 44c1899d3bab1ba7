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


def _immutability_check(reducer: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a reducer: pickle the old state before each action and compare it afterwards.

    It runs where the reducer runs (under the store lock, like any reducer), so it adds
    no lock of its own and listeners still run after the lock is released.
    """

    def checked(state: Any, action: Any) -> Any:
        snapshot = pickle.dumps(state)
        result = reducer(state, action)
        assert pickle.dumps(state) == snapshot, f"reducer mutated state on {action.type}"
        return result

    return checked


@pytest.fixture(autouse=True)
def _check_reducers_never_mutate(monkeypatch: pytest.MonkeyPatch) -> None:
    original = store.Store.__init__

    def init(self: store.Store, reducer: Any, state: Any, *args: Any, **kwargs: Any) -> None:
        original(self, _immutability_check(reducer), state, *args, **kwargs)

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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway Postgres on 127.0.0.1 (tests/pg.py); only tests that ask start it."""
    pytest.importorskip("psycopg", reason="needs the promptstate[postgres] extra (psycopg)")
    from tests.pg import PgCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("Postgres is not installed (apt-get install postgresql; .ci/run does)")
    cluster = PgCluster(bin_dir)
    yield cluster
    cluster.close()
