"""Reading runs back: diffs, restore and re-run (effects over the run reader port)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from promptstate.core.actions import InstanceRestored
from promptstate.engine.ports import Runtime
from promptstate.engine.prompts import ensure_prompt_version, start_instance
from promptstate.errors import InstanceBusyError, UnknownRunError
from promptstate.models.run import RunResult, model_label
from promptstate.models.values import ChatMessage

__all__ = ["RunDiff", "diff_runs", "get_run", "restore_run"]


def get_run(rt: Runtime, run_id: str) -> RunResult:
    """One run from the log; raises :class:`UnknownRunError`."""
    if not isinstance(run_id, str):
        raise UnknownRunError(repr(run_id))
    found = rt.reader.get_run(run_id)
    if found is None:
        raise UnknownRunError(run_id)
    return found


@dataclass(frozen=True)
class RunDiff:
    """What differs between two runs.

    Attributes
    ----------
    fields : dict
        ``{column: (a, b)}`` for provider, model, prompt version, status, tokens, latency.
    variables : dict
        ``{name: (a_value, b_value)}`` for names whose value differs (None where absent).
    messages : str
        Unified diff of the rendered request messages.
    response : str
        Unified diff of the responses.
    """

    a: str
    b: str
    fields: dict[str, tuple[Any, Any]]
    variables: dict[str, tuple[str | None, str | None]]
    messages: str
    response: str

    @property
    def same_prompt(self) -> bool:
        """True when the rendered requests are identical."""
        return not self.messages


_DIFF_FIELDS = (
    "provider",
    "model",
    "prompt_id",
    "prompt_version",
    "status",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "error",
)


def _lines(messages: tuple[ChatMessage, ...]) -> list[str]:
    out: list[str] = []
    for m in messages:
        out.append(f"[{m.role}]")
        out.extend(m.content.splitlines() or [""])
    return out


def diff_runs(a: RunResult, b: RunResult) -> RunDiff:
    """Compare two runs: settings fields, variables, rendered prompt, response."""
    fields = {
        col: (getattr(a, col), getattr(b, col))
        for col in _DIFF_FIELDS
        if getattr(a, col) != getattr(b, col)
    }
    variables: dict[str, tuple[str | None, str | None]] = {}
    for n in dict.fromkeys([*a.variables, *b.variables]):
        va = a.variables.get(n, (None, ""))[0]
        vb = b.variables.get(n, (None, ""))[0]
        if va != vb:
            variables[n] = (va, vb)
    msg = "\n".join(
        difflib.unified_diff(
            _lines(a.messages), _lines(b.messages), a.run_id, b.run_id, lineterm=""
        )
    )
    resp = "\n".join(
        difflib.unified_diff(
            (a.response or "").splitlines(),
            (b.response or "").splitlines(),
            a.run_id,
            b.run_id,
            lineterm="",
        )
    )
    return RunDiff(a.run_id, b.run_id, fields, variables, msg, resp)


def restore_run(rt: Runtime, rec: RunResult, into: str | None = None) -> tuple[str, str | None]:
    """Bring back the variables and sent conversation that produced ``rec``.

    Returns ``(instance_id, content)``: a new instance unless ``into`` names one, and the
    user message the run was a continuation with (None for a fresh send). The restored
    history is the request's messages before that user message, exactly as sent, so a
    re-run sends the identical request.
    """
    entry = ensure_prompt_version(rt, rec.prompt_id, rec.prompt_version)
    prompt = entry.prompt
    sent = rec.messages
    content = None
    history: tuple[ChatMessage, ...] = ()
    if len(sent) > len(prompt.messages) and sent and sent[-1].role == "user":
        content = sent[-1].content
        history = tuple(ChatMessage(m.role, m.content) for m in sent[:-1])
    iid = into
    if iid is not None:
        busy = rt.store.get_state().instances.get(iid)
        if busy is not None and busy.current_request_id is not None:
            raise InstanceBusyError(f"instance {iid!r} has a run in flight; cancel it first")
    if iid is None:
        iid = start_instance(rt, rec.prompt_id, {}, version=rec.prompt_version)
    stored = model_label(rec.provider, rec.model)
    rt.store.dispatch(
        InstanceRestored(
            instance_id=iid,
            prompt_version=rec.prompt_version,
            values={k: v for k, (v, _src) in rec.variables.items()},
            history=history,
            model=None if stored == prompt.model else stored,
        )
    )
    return iid, content
