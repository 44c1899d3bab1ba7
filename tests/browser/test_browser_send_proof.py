"""Randomized end to end proof of issue 11 in JupyterLab + headless Chromium.

A seeded generator drives two PromptRunners bound to one instance (A, B) and one bound
to another instance (C): it types into variable inputs without waiting for the sync,
clicks Send, types while a reply streams, clicks Stop, sets variables from code (a
cell), time-travels with the DevTools slider and returns, and sends follow-ups through
the composers. The test keeps its own model of what the user did. At the end it reads
every row of ``runs`` from the DuckDB file (after the kernel has let go of it) and checks
that each logged request equals the model's state at its click, and that each request's
history holds only messages that were sent or received: 0 stale, 0 invented.

What the model relies on, and the UI guarantees: a value typed into an input before a
click is sent by that click (the click carries unsynced edits of every view of the
instance). What the generator avoids, because no UI can order it: a code edit racing a
typed value that has not reached the kernel (before a code edit it flushes the inputs,
waits until the kernel has their values and the inputs' settle time has passed) and
two views holding unsynced edits of the same variable. It never sleeps to assert: every
wait is for a UI state, with generous timeouts.

``PROMPTSTATE_PROOF_SEED`` replays a run (the seed is printed);
``PROMPTSTATE_PROOF_STEPS`` sets its length (default 300; CI runs 1,000).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

pytestmark = pytest.mark.browser

STEPS = int(os.environ.get("PROMPTSTATE_PROOF_STEPS", "300"))
SEED = int(os.environ.get("PROMPTSTATE_PROOF_SEED", str(random.SystemRandom().randrange(10**6))))
SETTLE_S = 1.3  # js/src/lib/dirty.js SETTLE_MS (1 s) plus margin, on the browser's clock
WAIT = 60_000  # ms: generous, a loaded machine is slow
DB = "send_proof.duckdb"
CMD = "ps_proof_cmd.py"

SYSTEM = "You are terse."
PROMPTS = {
    "a": ("Summarize for {{user_name}}: {{text}}", {"text": "first draft", "user_name": "Ann"}),
    "c": ("Hello {{name}}, feeling {{mood}}?", {"name": "you", "mood": "fine"}),
}

SETUP = f"""\
import json
import promptstate as ps

session = ps.Session(db={DB!r})
session.prompts.register(ps.Prompt(
    id="summarize", messages=[ps.system({SYSTEM!r}), ps.user({PROMPTS["a"][0]!r})],
    variables={PROMPTS["a"][1]!r}, model="echo", settings={{"echo_delay": 0.05}}))
session.prompts.register(ps.Prompt(
    id="greet", messages=[ps.system({SYSTEM!r}), ps.user({PROMPTS["c"][0]!r})],
    variables={PROMPTS["c"][1]!r}, model="echo", settings={{"echo_delay": 0.02}}))
inst = session.start("summarize")
other = session.start("greet")
inst"""

CELLS = [
    SETUP,
    "ps.widgets.PromptRunner(inst)",
    "other",
    "ps.widgets.DevTools(session)",
    f"exec(open({CMD!r}).read())",
    # the present values, even while the devtools show the past
    "from promptstate.core.selectors import select_merged_variables as _vars\n"
    "_now = session.devtools.latest_state()\n"
    "print('VARS=' + json.dumps({k: {n: v.value for n, v in _vars(_now, i.id).items()}"
    " for k, i in (('a', inst), ('c', other))}))",
]
CELL_A, CELL_B, CELL_C, CELL_DEV, CELL_CMD, CELL_VARS = range(6)

WORDS = ["alpha", "beta", "gamma", "delta", "{{text}}", "é", "中文", "x y", "", "z"]


def value(rng: random.Random) -> str:
    n = rng.randrange(1, 4)
    return " ".join(rng.choice(WORDS) for _ in range(n)).strip() or "w"


def render(key: str, values: dict[str, str]) -> list[tuple[str, str]]:
    text = PROMPTS[key][0]
    for name in values:
        text = text.replace("{{" + name + "}}", "\0" + name + "\0")
    for name, v in values.items():
        text = text.replace("\0" + name + "\0", v)
    return [("system", SYSTEM), ("user", text)]


@dataclass
class Inst:
    key: str
    values: dict[str, str]
    views: list[str]
    conversation: list[tuple[str, str]] = field(default_factory=list)
    last_run: str | None = None
    typed_at: dict[str, float] = field(default_factory=dict)  # var -> when flushed/typed


@dataclass
class Expected:
    run_id: str
    inst: str
    messages: list[tuple[str, str]]
    values: dict[str, str]
    new: int
    status: str | None = None


class Proof:
    """The driver and the model."""

    def __init__(self, nb: Any, rng: random.Random) -> None:
        self.nb = nb
        self.page = nb.page
        self.rng = rng
        self.views = {
            "A": nb.cell(CELL_A).locator(".promptstate-widget"),
            "B": nb.cell(CELL_B).locator(".promptstate-widget"),
            "C": nb.cell(CELL_C).locator(".promptstate-widget"),
        }
        self.dev = nb.cell(CELL_DEV).locator(".ps-devtools")
        self.insts = {
            "a": Inst("a", dict(PROMPTS["a"][1]), ["A", "B"]),
            "c": Inst("c", dict(PROMPTS["c"][1]), ["C"]),
        }
        self.of_view = {"A": "a", "B": "a", "C": "c"}
        # (view, var) -> typed value the kernel may not have yet
        self.unsynced: dict[tuple[str, str], str] = {}
        self.expected: dict[str, Expected] = {}
        self.order: list[str] = []
        self.seen: set[tuple[str, str]] = set()
        self.received: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.viewing_past = False
        self.owner: dict[tuple[str, str], str] = {}
        self.pending: set[str] = set()  # instances with typed edits not known to be sent
        self.floor = 0  # no jump before both instances exist

    # -- reading the page ------------------------------------------------------------------

    def run_id(self, view: str) -> str:
        return self.views[view].locator("[data-field=metrics]").get_attribute("data-run-id") or ""

    def wait_ended(self, key: str) -> None:
        """Wait until every view of the instance shows its last run ended; fold it in."""
        inst = self.insts[key]
        rid = inst.last_run
        if rid is None:
            return
        for view in inst.views:
            loc = self.views[view]
            loc.locator(f"[data-field=metrics][data-run-id='{rid}']").wait_for(timeout=WAIT)
            loc.locator(
                ".ps-status:is([data-status=success],[data-status=cancelled],[data-status=error])"
            ).wait_for(timeout=WAIT)
        exp = self.expected[rid]
        if exp.status is None:
            exp.status = (
                self.views[inst.views[0]].locator(".ps-status").get_attribute("data-status")
            )
            if exp.status == "success":
                reply = exp.messages[-1][1]  # echo answers the last user message
                inst.conversation = [*exp.messages, ("assistant", reply)]
                self.received.add(reply)
                self.seen.add(("assistant", reply))

    # -- actions -----------------------------------------------------------------------------

    def type(self, view: str, var: str | None = None) -> None:
        key = self.of_view[view]
        inst = self.insts[key]
        var = var or self.rng.choice(list(inst.values))
        # Never two views with edits of one variable in flight: a view's own edit that
        # awaits the kernel's echo wins over another view's newer one at its click, and
        # when the echo lands is a race no model can call. The first view that types a
        # variable keeps it until a code edit has settled every view.
        view = self.owner.setdefault((key, var), view)
        text = value(self.rng)
        box = self.views[view].locator(f"[data-variable={var}]")
        if self.rng.random() < 0.5:
            box.fill(text)  # one input event
        else:
            box.click()
            box.press("Control+a")
            box.press_sequentially(text)  # key by key, no delay
        self.unsynced[(view, var)] = text
        self.pending.add(key)
        inst.values[var] = text
        inst.typed_at[var] = time.monotonic()
        self.counts["typed"] += 1

    def click_send(self, view: str, follow: str | None = None) -> str | None:
        key = self.of_view[view]
        inst = self.insts[key]
        if not self.viewing_past:
            self.wait_ended(key)
        loc = self.views[view]
        button = loc.locator("[data-action=send]")
        if self.viewing_past and not button.is_enabled():
            return None  # the past shown had a run in flight; the button says busy
        known = set(self.expected) | {""}
        if follow is not None:
            box = loc.locator("[data-field=composer]")
            box.fill(follow)
            box.press("Enter")
        else:
            button.click()
        # the click's run: a new run id in this view's metrics (the ack)
        self.page.wait_for_function(
            "([el, known]) => !known.includes(el.dataset.runId || '')",
            arg=[loc.locator("[data-field=metrics]").element_handle(), list(known)],
            timeout=WAIT,
        )
        rid = self.run_id(view)
        self.viewing_past = False  # any action returns to the present
        if follow is not None and inst.conversation:
            messages = [*inst.conversation, ("user", follow)]
            new = 1
        else:
            messages = render(key, inst.values)
            new = len(messages)
            if follow is not None:
                messages.append(("user", follow))
                new += 1
        for m in messages[: len(messages) - new]:
            assert m in self.seen, f"model bug: {m!r} was never sent"
        self.seen.update(messages)
        self.expected[rid] = Expected(rid, key, messages, dict(inst.values), new)
        self.order.append(rid)
        inst.last_run = rid
        self.pending.discard(key)
        for v in inst.views:  # carried by the click
            for var in list(inst.values):
                self.unsynced.pop((v, var), None)
        self.counts["follow-ups" if follow is not None else "sends"] += 1
        return rid

    def stop(self, view: str) -> None:
        # Stop only does something while the view says busy; a disabled button is a no-op
        self.views[view].locator("[data-action=stop]").evaluate(
            "(b) => { if (!b.disabled) b.click(); }"
        )
        self.counts["stops"] += 1

    def flush(self, key: str) -> None:
        """Make the kernel hold every value typed into the instance's views."""
        self.pending.discard(key)
        self.page.evaluate("() => document.activeElement && document.activeElement.blur()")
        want = {k: dict(i.values) for k, i in self.insts.items()}
        for _ in range(100):
            self.nb.run_cell(CELL_VARS)
            line = next(
                ln for ln in self.nb.output_text(CELL_VARS).splitlines() if ln.startswith("VARS=")
            )
            if json.loads(line.removeprefix("VARS="))[key] == want[key]:
                break
        else:
            pytest.fail(f"the kernel never got the typed values: {line} != {want}")
        for v in self.insts[key].views:
            for var in list(self.insts[key].values):
                self.unsynced.pop((v, var), None)

    def code_set(self, key: str) -> None:
        inst = self.insts[key]
        var = self.rng.choice(list(inst.values))
        if key in self.pending:
            self.flush(key)
        if (key, var) in self.owner:  # typed since the last code edit of it
            # every edit has left the browser; after the settle time a view holding one
            # shows a kernel value that differs (js/src/lib/dirty.js), so none can
            # override the code edit at a later click
            self.page.wait_for_timeout(SETTLE_S * 1000)
        self.owner.pop((key, var), None)
        text = value(self.rng)
        name = "inst" if key == "a" else "other"
        (self.nb.server.root_dir / CMD).write_text(f"{name}.set_variable({var!r}, {text!r})\n")
        self.nb.run_cell(CELL_CMD)
        self.viewing_past = False  # the edit returned the store to the present
        # the edit is settled once every view shows it: typing into a view before its
        # echo lands races the echo, and no model can order the two
        for v in inst.views:
            box = self.views[v].locator(f"[data-variable={var}]")
            self.page.wait_for_function(
                "([el, t]) => el.value === t", arg=[box.element_handle(), text], timeout=WAIT
            )
        inst.values[var] = text
        self.counts["code edits"] += 1

    def time_travel(self) -> None:
        for key in self.insts:
            self.wait_ended(key)
        # nothing pending may fire during the jump (it would return to the present)
        self.page.evaluate("() => document.activeElement && document.activeElement.blur()")
        for key in list(self.pending):
            self.flush(key)
        slider = self.dev.locator("[data-field=slider]")
        low = max(int(slider.get_attribute("min") or 0), self.floor)
        high = int(slider.get_attribute("max") or 0)
        if high - low < 2:
            return
        index = self.rng.randrange(low, high)
        slider.fill(str(index))
        self.dev.locator("[data-field=position]").filter(
            has_text=re.compile(rf"viewing #{index}\b")
        ).wait_for(timeout=WAIT)
        self.viewing_past = True
        self.counts["jumps"] += 1

    def resume(self) -> None:
        if not self.viewing_past:
            return
        slider = self.dev.locator("[data-field=slider]")
        slider.fill(slider.get_attribute("max") or "")
        self.dev.locator("[data-field=position]").filter(has_text="live").wait_for(timeout=WAIT)
        self.viewing_past = False
        self.counts["resumes"] += 1

    # -- the generator ----------------------------------------------------------------------

    def step(self) -> None:
        r = self.rng.random()
        view = self.rng.choice(["A", "B", "C"])
        if r < 0.30:
            self.type(view)
        elif r < 0.50:
            rid = self.click_send(view)
            if rid and self.rng.random() < 0.5:  # type while the reply streams
                self.type(self.rng.choice(self.insts[self.of_view[view]].views))
                self.counts["typed while streaming"] += 1
            if rid and self.rng.random() < 0.4:
                stopper = self.rng.choice(self.insts[self.of_view[view]].views)
                # once the reply streams (or the run has ended already: then Stop is off)
                self.views[stopper].locator(
                    ".ps-status:not([data-status=queued]):not([data-status=idle])"
                ).wait_for(timeout=WAIT)
                self.stop(stopper)
        elif r < 0.65:
            self.click_send(view, follow=value(self.rng))
        elif r < 0.72:
            self.stop(view)
        elif r < 0.78:
            self.code_set(self.of_view[view])
        elif r < 0.84:
            if self.viewing_past:
                self.resume()
            else:
                self.time_travel()
        else:
            if self.viewing_past and self.rng.random() < 0.5:
                self.type(view)  # an edit while viewing the past: applies to the present
            self.click_send(view)


def test_randomized_send_proof(open_notebook: Any, lab_server: Any, page: Any) -> None:
    print(f"\nsend proof: PROMPTSTATE_PROOF_SEED={SEED} PROMPTSTATE_PROOF_STEPS={STEPS}")
    page.set_viewport_size({"width": 1280, "height": 2400})
    rng = random.Random(SEED)
    (lab_server.root_dir / CMD).write_text("pass\n")
    nb = open_notebook("send_proof.ipynb", CELLS)
    for i in (CELL_A, CELL_B, CELL_C, CELL_DEV):
        nb.run_cell(i)
    proof = Proof(nb, rng)
    for v in proof.views.values():
        v.locator("[data-variable]").first.wait_for(timeout=WAIT)
    slider = proof.dev.locator("[data-field=slider]")
    slider.wait_for(timeout=WAIT)
    proof.floor = int(slider.get_attribute("max") or 0)

    start = time.perf_counter()
    for n in range(STEPS):
        try:
            proof.step()
        except Exception as exc:
            raise AssertionError(
                f"step {n} failed (replay: PROMPTSTATE_PROOF_SEED={SEED}): {exc}"
            ) from exc
    proof.resume()
    for key in proof.insts:
        proof.wait_ended(key)
    driven = time.perf_counter() - start

    # -- every row of runs, from the DuckDB file once the kernel has let go of it --------
    lab_server.shutdown_kernel(nb.name)
    import duckdb

    deadline = time.monotonic() + 60
    while True:
        try:
            con = duckdb.connect(str(lab_server.root_dir / DB), read_only=True)
            break
        except duckdb.Error:
            assert time.monotonic() < deadline, "the kernel never released the run log"
            time.sleep(0.2)
    try:
        rows = con.execute(
            "SELECT run_id, messages, variables, status, response FROM runs ORDER BY action_index"
        ).fetchall()
    finally:
        con.close()

    stale, invented, unknown, wrong_status = [], [], [], []
    sent_or_received: set[tuple[str, str]] = set()
    for run_id, messages, variables, status, response in rows:
        exp = proof.expected.get(run_id)
        if exp is None:
            unknown.append(run_id)
            continue
        got = [(m["role"], m["content"]) for m in json.loads(messages)]
        values = {k: v["value"] for k, v in json.loads(variables).items()}
        if got != exp.messages or values != exp.values:
            stale.append((run_id, got, exp.messages, values, exp.values))
        for m in got[: len(got) - exp.new]:
            if m not in sent_or_received:
                invented.append((run_id, m))
        sent_or_received.update(got)
        if status == "success":
            sent_or_received.add(("assistant", response))
        if status != exp.status:
            wrong_status.append((run_id, status, exp.status))
    missing = set(proof.expected) - {r[0] for r in rows}
    c = proof.counts
    print(
        f"send proof: {STEPS} steps in {driven:.1f}s "
        f"({driven / max(STEPS, 1) * 1000:.0f} ms/step); "
        f"{len(rows)} runs logged, {c['sends']} sends + {c['follow-ups']} follow-ups, "
        f"{sum(r[3] == 'cancelled' for r in rows)} cancelled; {dict(c)}; "
        f"stale={len(stale)} invented={len(invented)} unknown={len(unknown)} "
        f"missing={len(missing)}"
    )
    assert not stale, stale[:3]
    assert not invented, invented[:3]
    assert not unknown and not missing, (unknown, missing)
    assert not wrong_status, wrong_status[:3]
    assert len(rows) == c["sends"] + c["follow-ups"] > 0
