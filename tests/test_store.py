from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import promptstate as ps
from promptstate.core.actions import (
    ACTION_TYPES,
    Action,
    InstanceStarted,
    VariablesSet,
)
from promptstate.core.codec import action_from_json, action_to_json
from promptstate.core.reducers import reduce
from promptstate.core.state import State, initial_state
from promptstate.core.store import Store
from promptstate.devtools import DevTools


def _started(iid: str) -> InstanceStarted:
    return InstanceStarted(instance_id=iid, prompt_id="p", prompt_version="v", at=0.0)


def _set(iid: str, name: str, value: str) -> VariablesSet:
    return VariablesSet(instance_id=iid, values={name: value})


def test_dispatch_subscribe_unsubscribe() -> None:
    store = Store(reduce, initial_state())
    calls: list[int] = []
    unsub = store.subscribe(lambda: calls.append(len(store.get_state().instance_ids)))
    store.dispatch(_started("a"))
    unsub()
    store.dispatch(_started("b"))
    assert calls == [1]
    assert store.get_state().instance_ids == ("a", "b")


def test_an_action_no_slice_handles_keeps_identity_and_does_not_notify() -> None:
    store = Store(reduce, initial_state())
    before = store.get_state()
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))
    store.dispatch(_set("nobody", "x", "1"))  # no such instance: nothing changes
    assert store.get_state() is before
    assert calls == []


def test_middleware_order_and_thunks() -> None:
    seen: list[str] = []

    def mw(name: str) -> Any:
        def outer(store: Store) -> Any:
            def wrap(nxt: Any) -> Any:
                def dispatch(action: Any) -> Any:
                    seen.append(f"{name}:{getattr(action, 'type', 'transaction')}")
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
        return str(get_state().instance_ids[-1])

    assert asyncio.run(store.dispatch(athunk)) == "c"
    with pytest.raises(TypeError):
        store.dispatch(42)


def test_thread_safe_dispatch() -> None:
    store = Store(reduce, initial_state())
    store.dispatch(_started("a"))

    def worker(n: int) -> None:
        for i in range(200):
            store.dispatch(_set("a", f"v{n}_{i}", str(i)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get_state().instances["a"].values) == 8 * 200


def test_listener_errors_are_logged_and_do_not_break_dispatch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store(reduce, initial_state())

    def bad() -> None:
        raise RuntimeError("view broke")

    store.subscribe(bad)
    with caplog.at_level("ERROR", logger="promptstate"):
        store.dispatch(_started("a"))
    assert store.get_state().instance_ids == ("a",)
    assert any("listener" in r.message and r.exc_info for r in caplog.records)


def test_reducer_is_pure_and_deterministic() -> None:
    actions: list[Action] = [_started("a"), _set("a", "x", "1")]
    s1 = s2 = initial_state()
    for a in actions:
        s1 = reduce(s1, a)
        s2 = reduce(s2, a)
    assert s1 == s2
    assert s1 is not s2


def _stores() -> list[Store]:
    plain = Store(reduce, initial_state())
    dt = DevTools(max_age=50)
    recorded = Store(reduce, initial_state(), recorder=dt)
    dt.attach(recorded)
    session = ps.Session()  # a real session: devtools on, test middleware on
    return [plain, recorded, session.store]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["plain", "devtools", "session"])
def test_no_listener_runs_while_the_lock_is_held(which: int) -> None:
    store = _stores()[which]
    held: list[bool] = []

    def listener() -> None:
        # an RLock owned by this thread can be re-acquired; probe from another thread
        got: list[bool] = []

        def probe() -> None:
            ok = store.lock.acquire(timeout=5)
            got.append(ok)
            if ok:
                store.lock.release()

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        held.append(not (got and got[0]))

    store.subscribe(listener)
    store.dispatch(_started("a"))
    store.dispatch(_set("a", "x", "1"))
    store.transact(lambda state, index: _set("a", "x", "2"))
    assert held and not any(held), "a listener ran while the store lock was held"


@pytest.mark.parametrize("which", [0, 1, 2], ids=["plain", "devtools", "session"])
def test_a_listener_that_dispatches_from_another_thread_does_not_deadlock(which: int) -> None:
    store = _stores()[which]
    store.dispatch(_started("a"))
    done = threading.Event()
    fired: list[int] = []

    def listener() -> None:
        if fired:
            return
        fired.append(1)
        t = threading.Thread(target=lambda: (store.dispatch(_set("a", "y", "2")), done.set()))
        t.start()
        t.join(timeout=10)  # would hang forever if the dispatching thread held the lock

    store.subscribe(listener)
    store.dispatch(_set("a", "x", "1"))
    assert done.wait(10)
    values = store.get_state().instances["a"].values
    assert (values["x"], values["y"]) == ("1", "2")


def test_transact_builds_from_the_state_it_applies_to_and_raising_changes_nothing() -> None:
    store = Store(reduce, initial_state())
    store.dispatch(_started("a"))
    seen: list[State] = []

    def build(state: State, index: int) -> Action:
        seen.append(state)
        return _set("a", "x", state.instances["a"].values.get("x", "") + "!")

    store.transact(build)
    store.transact(build)
    assert store.get_state().instances["a"].values["x"] == "!!"
    before = store.get_state()

    def refuse(state: State, index: int) -> Action:
        raise ps.VariableError("no")

    with pytest.raises(ps.VariableError):
        store.transact(refuse)
    assert store.get_state() is before


def test_every_action_round_trips_through_json() -> None:
    assert all(t == cls.type and "/" in t for t, cls in ACTION_TYPES.items())
    a = _set("a", "x", "1")
    again = action_from_json(a.type, action_to_json(a))
    assert again == a
    with pytest.raises(ps.StateImportError, match="unexpected"):
        action_from_json(a.type, {**action_to_json(a), "extra": 1})
    with pytest.raises(ps.StateImportError, match="values"):
        action_from_json(a.type, {"instance_id": "a", "values": {"x": 1}})
    with pytest.raises(ps.StateImportError, match="unknown action type"):
        action_from_json("nothing/happened", {})
