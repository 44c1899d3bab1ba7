from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from promptstate import Action
from promptstate.core.reducers import reduce
from promptstate.core.state import initial_state
from promptstate.core.store import Store


def _started(iid: str) -> Action:
    return Action(
        "instances/started",
        {"instance_id": iid, "prompt_id": "p", "prompt_version": "v", "values": {}, "at": 0.0},
    )


def test_dispatch_subscribe_unsubscribe() -> None:
    store = Store(reduce, initial_state())
    calls: list[int] = []
    unsub = store.subscribe(lambda: calls.append(len(store.get_state().instance_ids)))
    store.dispatch(_started("a"))
    unsub()
    store.dispatch(_started("b"))
    assert calls == [1]
    assert store.get_state().instance_ids == ("a", "b")


def test_unknown_action_keeps_identity_and_does_not_notify() -> None:
    store = Store(reduce, initial_state())
    before = store.get_state()
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))
    store.dispatch(Action("nothing/happened", {}))
    assert store.get_state() is before
    assert calls == []


def test_middleware_order_and_thunks() -> None:
    seen: list[str] = []

    def mw(name: str) -> Any:
        def outer(store: Store) -> Any:
            def wrap(nxt: Any) -> Any:
                def dispatch(action: Any) -> Any:
                    seen.append(f"{name}:{action.type}")
                    return nxt(action)

                return dispatch

            return wrap

        return outer

    store = Store(reduce, initial_state(), (mw("first"), mw("second")))
    store.dispatch(_started("a"))
    assert seen[-2:] == ["first:instances/started", "second:instances/started"]

    def thunk(dispatch: Any, get_state: Any) -> int:
        dispatch(_started("b"))
        return len(get_state().instance_ids)

    assert store.dispatch(thunk) == 2

    async def athunk(dispatch: Any, get_state: Any) -> str:
        await asyncio.sleep(0)
        dispatch(_started("c"))
        return get_state().instance_ids[-1]

    assert asyncio.run(store.dispatch(athunk)) == "c"
    with pytest.raises(TypeError):
        store.dispatch(42)


def test_thread_safe_dispatch() -> None:
    store = Store(reduce, initial_state())
    store.dispatch(_started("a"))

    def worker(n: int) -> None:
        for i in range(200):
            store.dispatch(
                Action(
                    "instances/variable_set",
                    {"instance_id": "a", "name": f"v{n}_{i}", "value": str(i)},
                )
            )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get_state().instances["a"].values) == 8 * 200


def test_listener_errors_do_not_break_dispatch() -> None:
    store = Store(reduce, initial_state())

    def bad() -> None:
        raise RuntimeError("view broke")

    store.subscribe(bad)
    store.dispatch(_started("a"))
    assert store.get_state().instance_ids == ("a",)
    assert isinstance(store.listener_errors[0], RuntimeError)


def test_reducer_is_pure_and_deterministic() -> None:
    actions = [
        _started("a"),
        Action("instances/variable_set", {"instance_id": "a", "name": "x", "value": "1"}),
    ]
    s1 = s2 = initial_state()
    for a in actions:
        s1 = reduce(s1, a)
        s2 = reduce(s2, a)
    assert s1 == s2
    assert s1 is not s2
