"""Reading runs back: records, diffs, restore and re-run (effects over the run log)."""

from __future__ import annotations

import difflib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptstate.core.state import Action, ChatMessage, prompt_key
from promptstate.engine.execute import RunResult
from promptstate.errors import UnknownPromptError, UnknownRunError
from promptstate.models.prompt import prompt_from_dict

if TYPE_CHECKING:
    from promptstate.session.session import Instance, Session

__all__ = ["RunDiff", "RunRecord", "diff_runs", "get_run", "rerun", "restore_run"]


@dataclass(frozen=True)
class RunRecord:
    """A ``runs`` row, with ``variables`` and ``messages`` parsed.

    ``variables`` maps name to ``(value, source)``; ``row`` keeps every column as stored.
    """

    run_id: str
    prompt_id: str
    prompt_version: str
    provider: str
    model: str
    status: str
    response: str | None
    error: str | None
    variables: dict[str, tuple[str, str]]
    messages: tuple[ChatMessage, ...]
    row: dict[str, Any] = field(repr=False)

    def __getitem__(self, column: str) -> Any:
        return self.row[column]


def get_run(session: Session, run_id: str) -> RunRecord:
    """Read one run from the log; raises :class:`UnknownRunError`."""
    rel = session.runlog.sql("SELECT * FROM runs WHERE run_id = ?", [run_id])
    cols = [d[0] for d in rel.description]
    rows = rel.fetchall()
    if not rows:
        raise UnknownRunError(run_id)
    row = dict(zip(cols, rows[0], strict=True))
    variables = {
        k: (v["value"], v["source"]) for k, v in json.loads(row["variables"] or "{}").items()
    }
    messages = tuple(
        ChatMessage(m["role"], m["content"]) for m in json.loads(row["messages"] or "[]")
    )
    return RunRecord(
        run_id=row["run_id"],
        prompt_id=row["prompt_id"],
        prompt_version=row["prompt_version"],
        provider=row["provider"],
        model=row["model"],
        status=row["status"],
        response=row["response"],
        error=row["error"],
        variables=variables,
        messages=messages,
        row=row,
    )


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


def _lines(messages: tuple[ChatMessage, ...]) -> list[str]:
    out: list[str] = []
    for m in messages:
        out.append(f"[{m.role}]")
        out.extend(m.content.splitlines() or [""])
    return out


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """Compare two runs: settings fields, variables, rendered prompt, response."""
    fields = {}
    for col in (
        "provider",
        "model",
        "prompt_id",
        "prompt_version",
        "status",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "error",
    ):
        if a.row.get(col) != b.row.get(col):
            fields[col] = (a.row.get(col), b.row.get(col))
    names = list(dict.fromkeys([*a.variables, *b.variables]))
    variables: dict[str, tuple[str | None, str | None]] = {}
    for n in names:
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


def _ensure_prompt_version(session: Session, prompt_id: str, version: str) -> None:
    if prompt_key(prompt_id, version) in session.store.get_state().prompts:
        return
    stored = session.runlog.load_prompt(prompt_id, version)
    if stored is None:
        raise UnknownPromptError(prompt_key(prompt_id, version))
    prompt = prompt_from_dict(stored, f"prompt {prompt_id!r} version {version!r}")
    session.store.dispatch(
        Action(
            "prompts/fetch_fulfilled",
            {
                "prompt": prompt.to_dict(),
                "source": "db",
                "at": time.time(),
                "request_id": uuid.uuid4().hex,
                "latest": False,
            },
        )
    )


def restore_run(session: Session, run_id: str, into: Instance | None = None) -> Instance:
    """Bring back the exact variables and conversation that produced ``run_id``.

    A new instance by default; pass ``into=inst`` to restore that instance instead.
    """
    return _restore(session, get_run(session, run_id), into)[0]


def _restore(
    session: Session, rec: RunRecord, into: Instance | None
) -> tuple[Instance, str | None]:
    """The restored instance, and the user content the run was sent with (if any)."""
    from promptstate.session.session import Instance

    _ensure_prompt_version(session, rec.prompt_id, rec.prompt_version)
    prompt = session.store.get_state().prompts[prompt_key(rec.prompt_id, rec.prompt_version)].prompt
    n = len(prompt.messages)
    extra = rec.messages[n:]
    # a continuation's last message is the user content it was sent with, not history
    history = extra[:-1] if extra and extra[-1].role == "user" else extra
    if into is None:
        iid = uuid.uuid4().hex[:12]
        session.store.dispatch(
            Action(
                "instances/started",
                {
                    "instance_id": iid,
                    "prompt_id": rec.prompt_id,
                    "prompt_version": rec.prompt_version,
                    "model": None,
                    "values": {},
                    "track_in_runs": True,
                    "at": time.time(),
                },
            )
        )
    else:
        iid = into.id
    session.store.dispatch(
        Action(
            "instances/restored",
            {
                "instance_id": iid,
                "prompt_version": rec.prompt_version,
                "values": {k: v for k, (v, _src) in rec.variables.items()},
                "history": [
                    {"role": m.role, "content": m.content, "run_id": None} for m in history
                ],
            },
        )
    )
    inst = Instance(session, iid)
    stored_model = f"{rec.provider}:{rec.model}" if rec.provider != "echo" else "echo"
    if stored_model != prompt.model:
        inst.set_model(stored_model)
    content = extra[-1].content if extra and extra[-1].role == "user" else None
    return inst, content


async def rerun(session: Session, run_id: str, model: str | None = None) -> RunResult:
    """Start a new instance with that run's prompt version and variables and send it."""
    inst, content = _restore(session, get_run(session, run_id), None)
    try:
        return await inst.send(content, model=model)
    finally:
        inst.close()  # the run log keeps the run; the store does not grow per re-run
