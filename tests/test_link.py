"""``ps.link`` / ``inst.bind``: stock ipywidgets bound to an instance, both ways.

Widgets are driven the way the front end drives them: a plain ``w.value = ...`` (the
trait set that a comm update ends in) and ``w.set_state({"value": ...})`` (ipywidgets'
own path for a front-end update).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
import traitlets

import promptstate as ps
from promptstate.session import bindings

PROMPT = ps.Prompt(
    id="tune",
    messages=[ps.user("{{text}} n={{n}} flag={{flag}}")],
    variables={"text": "draft", "n": "3", "flag": "false"},
    model="echo",
)


@pytest.fixture
def sync_session(tmp_path: Path) -> Iterator[ps.Session]:
    # Made outside any loop: store -> widget updates run inline (a plain script).
    s = ps.Session(db=str(tmp_path / "runs.duckdb"))
    s.prompts.register(PROMPT)
    yield s
    s.close()


def _runs_rows(session: ps.Session) -> list[tuple[Any, ...]]:
    return session.runs.sql(
        "SELECT messages, settings, model FROM runs WHERE session_id = ? ORDER BY started_at",
        [session.id],
    ).fetchall()


async def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


# -- two-way sync ----------------------------------------------------------------------------


def test_bind_is_two_way(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    w = widgets.Textarea()
    assert inst.bind("text", w) is w
    assert w.value == "draft"  # the merged value, shown at once
    assert inst.variables["text"].source == "default"

    w.value = "typed"  # the trait set a front-end update ends in
    assert inst.variables["text"].value == "typed"
    assert inst.variables["text"].source == "instance"

    w.set_state({"value": "from the page"})  # ipywidgets' front-end update path
    assert inst.variables["text"].value == "from the page"

    inst.set_variable("text", "from code")
    assert w.value == "from code"


def test_numbers_and_booleans_become_variable_text(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    n = widgets.IntSlider(min=0, max=10)
    flag = widgets.Checkbox()
    ps.link(n, inst, "n")
    ps.link(flag, inst, "flag")
    assert (n.value, flag.value) == (3, False)  # "3" and "false" parsed back
    n.value = 7
    flag.value = True
    assert inst.variables["n"].value == "7"
    assert inst.variables["flag"].value == "true"
    inst.set_variables({"n": 9, "flag": False})
    assert (n.value, flag.value) == (9, False)
    run = inst.run()
    assert run.messages[-1].content == "draft n=9 flag=false"


def test_two_controls_on_one_variable_agree(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    a, b = widgets.Text(), widgets.Textarea()
    inst.bind("text", a)
    inst.bind("text", b)
    a.value = "one"
    assert b.value == "one"
    b.set_state({"value": "two"})
    assert a.value == "two"


def test_model_dropdown(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    dd = widgets.Dropdown(options=["echo", "echo:other"])
    ps.link(dd, inst, "model")
    assert dd.value == "echo"
    dd.value = "echo:other"
    assert inst.model == "echo:other"
    inst.set_model(None)
    assert dd.value == "echo"
    assert inst.run().model == "echo"


def test_followers_see_devtools_jump(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    w = inst.bind("text", widgets.Textarea())
    inst.set_variable("text", "first")
    at_first = sync_session.devtools.last_index
    inst.set_variable("text", "second")
    sync_session.devtools.jump(at_first)
    assert w.value == "first"  # the control shows the past the store shows
    sync_session.devtools.resume()
    assert w.value == "second"
    # before the instance existed: the control keeps its value, and the link survives
    sync_session.devtools.jump(sync_session.devtools.first_index)
    assert w.value == "second"
    sync_session.devtools.resume()
    inst.set_variable("text", "third")
    assert w.value == "third"


# -- no echo loop --------------------------------------------------------------------------


def test_store_to_widget_update_dispatches_nothing(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    w = widgets.Textarea()
    other = widgets.Text()
    inst.bind("text", w)
    inst.bind("text", other)
    store = sync_session.store

    before = store.action_count
    inst.set_variable("text", "from code")
    assert (w.value, other.value) == ("from code", "from code")
    assert store.action_count == before + 1  # only the set itself

    before = store.action_count
    w.value = "from the page"
    assert other.value == "from the page"
    assert store.action_count == before + 1  # one dispatch, no echo back and forth

    before = store.action_count
    w.set_state({"value": "from the page"})  # unchanged: nothing to do
    sync_session.devtools.jump(sync_session.devtools.last_index - 1)
    sync_session.devtools.resume()
    assert store.action_count == before


# -- threads and loops ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_store_changes_from_a_worker_thread_reach_the_widget_on_the_loop(
    tmp_path: Path,
) -> None:
    session = ps.Session(db=str(tmp_path / "runs.duckdb"))  # inside the loop, like a cell
    session.prompts.register(PROMPT)
    inst = session.start("tune")
    w = inst.bind("text", widgets.Textarea())
    writers: list[int] = []
    w.observe(lambda _c: writers.append(threading.get_ident()), names="value")

    t = threading.Thread(target=inst.set_variable, args=("text", "from a thread"))
    t.start()
    t.join()
    await _wait_for(lambda: w.value == "from a thread")
    assert writers == [threading.get_ident()]  # the trait was written on the loop's thread

    # a front-end update arriving on another thread (a kernel subshell) dispatches there
    t = threading.Thread(target=w.set_state, args=({"value": "from a subshell"},))
    t.start()
    t.join()
    assert inst.variables["text"].value == "from a subshell"
    await session.aclose()


@pytest.mark.anyio
async def test_button_send_soon_reads_bound_controls(tmp_path: Path) -> None:
    session = ps.Session(db=str(tmp_path / "runs.duckdb"))
    session.prompts.register(PROMPT)
    inst = session.start("tune")
    text = inst.bind("text", widgets.Textarea())
    temp = inst.bind("settings.temperature", widgets.FloatSlider(value=0.7, min=0, max=2))
    futures: list[Any] = []
    button = widgets.Button(description="Send")
    button.on_click(lambda _b: futures.append(inst.send_soon()))

    text.value = "clicked"
    temp.value = 1.25
    button.click()
    run = await asyncio.wrap_future(futures[0])
    assert run.messages[-1].content.startswith("clicked ")
    assert run.settings["temperature"] == 1.25
    await session.aclose()


# -- validation ----------------------------------------------------------------------------


class Holder(traitlets.HasTraits):
    """Any HasTraits object can be bound, not only ipywidgets."""

    value = traitlets.Any()


def test_rejected_value_leaves_store_unchanged_and_reverts(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune", variables={"text": "kept"})
    errors: list[ps.PromptStateError] = []
    h = Holder()
    lk = ps.link(h, inst, "text", on_error=errors.append)
    assert h.value == "kept"
    before = sync_session.store.action_count

    h.value = object()  # not a variable value
    assert isinstance(lk.error, ps.VariableError)
    assert errors == [lk.error]
    assert inst.variables["text"].value == "kept"
    assert sync_session.store.action_count == before
    assert h.value == "kept"  # reverted to the store's value

    h.value = "accepted"
    assert lk.error is None
    assert inst.variables["text"].value == "accepted"


def test_rejected_model_reverts(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    box = widgets.Text()
    lk = ps.link(box, inst, "model")
    box.value = "nope:model"
    assert isinstance(lk.error, ps.UnknownProviderError)
    assert inst.model == "echo"
    assert box.value == "echo"


def test_rejected_setting_reverts(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    h = Holder(value=0.5)
    lk = ps.link(h, inst, "settings.temperature")
    h.value = float("nan")
    assert isinstance(lk.error, ps.ProviderConfigError)
    assert h.value == 0.5
    assert inst.run().settings["temperature"] == 0.5
    with pytest.raises(ps.ProviderConfigError):  # a bad initial value binds nothing
        ps.link(Holder(value=float("inf")), inst, "settings.top_p")
    assert bindings.provider_count(sync_session, inst.id) == 1


def test_bad_link_arguments_are_typed_errors(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    listeners = sync_session.store.listener_count
    with pytest.raises(ps.VariableError):
        ps.link(widgets.Text(), inst, "not a name")
    with pytest.raises(TypeError):
        ps.link(widgets.Text(), inst, "text", trait="nope")
    with pytest.raises(TypeError):
        ps.link(object(), inst, "text")  # type: ignore[arg-type]
    assert sync_session.store.listener_count == listeners
    assert bindings.provider_count(sync_session) == 0


# -- sends read the controls' latest values ------------------------------------------------


def test_send_reads_a_setting_changed_just_before(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    slider = widgets.FloatSlider(value=0.2, min=0, max=2, step=0.1)
    inst.bind("settings.temperature", slider)
    steps = widgets.IntSlider(value=64, min=1, max=512)
    inst.bind("settings.max_tokens", steps)
    slider.value = 0.9
    steps.value = 100
    run = inst.run()
    assert run.settings["temperature"] == 0.9
    assert run.settings["max_tokens"] == 100 and isinstance(run.settings["max_tokens"], int)
    # explicit arguments win over bound controls
    run = inst.run(settings={"temperature": 0.1})
    assert run.settings["temperature"] == 0.1
    settings = [s for _m, s, _model in _runs_rows(sync_session)]
    assert '"temperature":0.9' in settings[0].replace(" ", "")


def test_send_reads_a_control_whose_notification_has_not_fired(
    sync_session: ps.Session,
) -> None:
    inst = sync_session.start("tune")
    w = inst.bind("text", widgets.Textarea())
    dd = widgets.Dropdown(options=["echo", "echo:held"])
    ps.link(dd, inst, "model")
    # ipywidgets applies a front-end update under hold_trait_notifications: observers
    # (the link's dispatch) fire only when the block ends; a send inside must see it
    with w.hold_trait_notifications(), dd.hold_trait_notifications():
        w.value = "held edit"
        dd.value = "echo:held"
        run = inst.run()
        after_send = sync_session.store.action_count
    assert run.messages[-1].content.startswith("held edit ")
    assert run.model == "held"
    assert inst.variables["text"].value == "held edit"  # the send applied it
    # the late notifications: the text is in the store already (no second action); the
    # model was per-send, so choosing it now sets the instance's model (one action)
    assert sync_session.store.action_count == after_send + 1
    assert inst.model == "echo:held"


def test_send_does_not_pin_inherited_values(sync_session: ps.Session) -> None:
    inst = sync_session.start("tune")
    inst.bind("text", widgets.Textarea())
    inst.bind("n", widgets.IntSlider())
    inst.run()
    assert inst.variables["text"].source == "default"
    assert inst.variables["n"].source == "default"


# -- detaching -----------------------------------------------------------------------------


def test_unlink_detaches_everything(sync_session: ps.Session) -> None:
    store = sync_session.store
    inst = sync_session.start("tune")
    w = widgets.Textarea()
    notifiers_before = len(w._trait_notifiers.get("value", {}).get("change", []))
    listeners_before = store.listener_count
    lk = ps.link(w, inst, "text")
    assert store.listener_count == listeners_before + 1
    assert bindings.provider_count(sync_session, inst.id) == 1

    lk.unlink()
    lk.unlink()  # idempotent
    assert lk.closed
    assert store.listener_count == listeners_before
    assert bindings.provider_count(sync_session) == 0
    assert len(w._trait_notifiers.get("value", {}).get("change", [])) == notifiers_before
    w.value = "after unlink"
    assert inst.variables["text"].value == "draft"
    inst.set_variable("text", "code")
    assert w.value == "after unlink"


def test_closing_the_instance_or_the_widget_detaches(sync_session: ps.Session) -> None:
    store = sync_session.store
    base = store.listener_count
    inst = sync_session.start("tune")
    a = ps.link(widgets.Textarea(), inst, "text")
    b = ps.link(widgets.FloatSlider(), inst, "settings.temperature")
    c_widget = widgets.Dropdown(options=["echo"])
    c = ps.link(c_widget, inst, "model")
    other = sync_session.start("tune")
    d = ps.link(widgets.Text(), other, "text")
    assert store.listener_count == base + 3  # settings links do not subscribe

    c_widget.close()
    assert c.closed
    assert store.listener_count == base + 2

    inst.close()
    assert a.closed and b.closed and not d.closed
    assert store.listener_count == base + 1
    assert bindings.provider_count(sync_session, inst.id) == 0
    assert bindings.provider_count(sync_session) == 1


def test_import_promptstate_does_not_import_ipywidgets() -> None:
    code = (
        "import sys, promptstate as ps\n"
        "assert 'ipywidgets' not in sys.modules and 'traitlets' not in sys.modules\n"
        "assert callable(ps.link) and ps.Link.__name__ == 'Link'\n"
        "assert 'traitlets' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
