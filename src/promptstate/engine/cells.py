"""A sweep's cells: rendered in batches inside the transaction that records them, then called.

The bulk path behind ``Session.sweep``. A cell is not an instance: the cells that get a
free slot at the same moment are rendered together in one store transaction, from the
state that transaction's :class:`~promptstate.core.actions.SweepCellsSent` applies to
(the prompt version, the scoped variables and the settings of that instant), so what a
cell sends is fixed when it is sent, as for any send. Each cell's call is then one task
that streams the reply and builds its :class:`RunResult` directly; cells that end in the
same loop iteration share one run-log op and one ``SweepCellsFinished``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptstate.core.actions import SentCell, SweepCellsSent
from promptstate.core.selectors import select_scoped_layers
from promptstate.core.state import State
from promptstate.engine.execute import describe_error, without_tracebacks
from promptstate.engine.ports import Runtime
from promptstate.engine.send import request_cache_key, request_settings, state_hash
from promptstate.errors import (
    MissingVariablesError,
    PromptStateError,
    ProviderError,
    UnknownPromptError,
)
from promptstate.models import provider as pb
from promptstate.models.provider import Provider
from promptstate.models.run import RunResult, make_result
from promptstate.models.template import parse
from promptstate.models.values import ChatMessage

__all__ = ["CellRequest", "Rendered", "call_cell", "open_result", "render_cells", "reply_now"]


@dataclass(frozen=True)
class CellRequest:
    """What a cell asks for: its index, its own variables and its model string."""

    index: int
    variables: Mapping[str, str]
    model: str


@dataclass
class Rendered:
    """One batch: the recorded action (None if no cell could send) and the providers."""

    action: SweepCellsSent | None
    providers: dict[int, Provider] = field(default_factory=dict)
    failed: list[tuple[int, PromptStateError]] = field(default_factory=list)


class _NothingSent(Exception):
    pass


def render_cells(
    rt: Runtime,
    sweep_id: str,
    prompt_id: str,
    cells: Sequence[CellRequest],
    settings: Mapping[str, Any],
    use_cache: bool,
) -> Rendered:
    """Render and record a batch of cells in one store transaction.

    A cell that cannot send (a missing variable, an unknown prompt) is listed in
    ``failed`` with its typed error and is not part of the action; the others are recorded
    and must each be called (:func:`call_cell`) or ended, so every one reaches the log.
    """
    out = Rendered(None)

    def build(state: State, index: int) -> SweepCellsSent:
        out.providers.clear()
        out.failed.clear()
        entry = state.prompts.get(prompt_id)  # the latest version cached at this instant
        if entry is None:
            gone = UnknownPromptError(f"{prompt_id!r} is not in the prompt cache")
            out.failed.extend((c.index, gone) for c in cells)
            raise _NothingSent
        prompt = entry.prompt
        base = select_scoped_layers(state, entry)
        templates = [(m.role, parse(m.content)) for m in prompt.messages]
        used = prompt.used_variables
        resolved: dict[str, tuple[str, str, Provider, dict[str, Any]]] = {}
        at = rt.clock()
        sent: list[SentCell] = []
        for c in cells:
            try:
                merged = base.with_values(c.variables)
                missing = [n for n in used if merged[n].value is None]
                if missing:
                    raise MissingVariablesError(missing, prompt.id)
                target = resolved.get(c.model)
                if target is None:
                    pname, mname, provider = rt.providers.resolve(c.model)
                    merged_settings = request_settings(pname, prompt.settings, settings)
                    target = resolved[c.model] = (pname, mname, provider, merged_settings)
            except PromptStateError as exc:
                out.failed.append((c.index, exc))
                continue
            pname, mname, provider, merged_settings = target
            values = {n: v.value for n, v in merged.items() if v.value is not None}
            variables = tuple(
                (n, v.value, v.source) for n, v in merged.items() if v.value is not None
            )
            rid = rt.new_id()
            # as the log stores a request: roles and texts (the cell's run_id says whose)
            messages = tuple(ChatMessage(role, t.render(values)) for role, t in templates)
            key = None
            if use_cache:
                key = request_cache_key(pname, mname, messages, merged_settings)
            sent.append(
                SentCell(
                    index=c.index,
                    run_id=rid,
                    instance_id=rt.new_instance_id(),
                    provider=pname,
                    model=mname,
                    variables=variables,
                    messages=messages,
                    settings=merged_settings,
                    state_hash=state_hash(variables, messages, prompt.version),
                    cache_key=key,
                )
            )
            out.providers[c.index] = provider
        if not sent:
            raise _NothingSent
        for s in sent:
            rt.tasks.reserve(s.run_id)  # ours from here on: never settled as an orphan
        return SweepCellsSent(
            sweep_id=sweep_id,
            prompt_id=prompt.id,
            prompt_version=prompt.version,
            at=at,
            cells=tuple(sent),
            action_index=index,
        )

    with contextlib.suppress(_NothingSent):
        action = rt.store.transact(build)
        assert isinstance(action, SweepCellsSent)
        out.action = action
    return out


def open_result(action: SweepCellsSent, cell: SentCell, **changes: Any) -> RunResult:
    """A cell's run as the log stores it (``running`` unless ``changes`` say otherwise)."""
    fields: dict[str, Any] = {
        "run_id": cell.run_id,
        "instance_id": cell.instance_id,
        "prompt_id": action.prompt_id,
        "prompt_version": action.prompt_version,
        "provider": cell.provider,
        "model": cell.model,
        "status": "running",
        "variables": {n: (v, s) for n, v, s in cell.variables},
        "messages": cell.messages,
        "started_at": action.at,
        "sweep_id": action.sweep_id,
        "action_index": action.action_index,
        "state_hash": cell.state_hash,
        "cache_key": cell.cache_key,
        "settings": cell.settings,
    }
    fields.update(changes)
    return make_result(fields)


class _Reply:
    """A cell's reply as it arrives: text, usage, attempts and time to first token."""

    __slots__ = ("attempts", "in_tok", "out_tok", "pieces", "t0", "ttft")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.in_tok: int | None = None
        self.out_tok: int | None = None
        self.attempts = 0
        self.ttft: float | None = None
        self.t0 = time.perf_counter()

    def feed(self, ev: pb.StreamEvent) -> None:
        kind = type(ev)
        if kind is pb.TextDelta:
            if ev.text:  # type: ignore[union-attr]
                if self.ttft is None:
                    self.ttft = (time.perf_counter() - self.t0) * 1000
                self.pieces.append(ev.text)  # type: ignore[union-attr]
        elif kind is pb.UsageInfo:
            self.in_tok, self.out_tok = ev.input_tokens, ev.output_tokens  # type: ignore[union-attr]
        elif kind is pb.AttemptStarted:
            self.attempts = ev.attempt  # type: ignore[union-attr]

    def result(
        self,
        rt: Runtime,
        action: SweepCellsSent,
        cell: SentCell,
        status: str = "success",
        error: BaseException | str | None = None,
        hit: bool = False,
    ) -> RunResult:
        """The finished run: ``error`` is the exception it failed with (or a reason)."""
        text = error_type = None
        exc: BaseException | None = None
        if isinstance(error, BaseException):
            status, text, exc = "error", describe_error(error), error
            if isinstance(error, PromptStateError):
                error_type = type(error).__name__
            if isinstance(error, ProviderError):
                self.attempts = max(self.attempts, error.attempts)
        else:
            text = error
        return open_result(
            action,
            cell,
            status=status,
            response="".join(self.pieces),
            error=text,
            error_type=error_type,
            input_tokens=self.in_tok,
            output_tokens=self.out_tok,
            latency_ms=0.0 if hit else (time.perf_counter() - self.t0) * 1000,
            ttft_ms=0.0 if hit else self.ttft,
            attempts=self.attempts,
            cost_usd=0.0
            if hit
            else rt.cost(cell.provider, cell.model, (self.in_tok, self.out_tok)),
            cache_hit=hit,
            finished_at=rt.clock(),
            session_id=rt.session_id,
            exception=without_tracebacks(exc),
        )


def _request(cell: SentCell) -> pb.ChatRequest:
    return pb.ChatRequest(
        model=cell.model,
        messages=tuple({"role": m.role, "content": m.content} for m in cell.messages),
        settings=cell.settings,
        stream=bool(cell.settings.get("stream", True)),
    )


def reply_now(
    rt: Runtime, action: SweepCellsSent, cell: SentCell, provider: Provider
) -> RunResult | None:
    """The finished run at once if the provider knows its reply without I/O, else None."""
    if cell.cache_key is not None:
        return None  # the cache lookup reads the log: not here, on the loop
    reply = _Reply()
    try:
        known = provider.reply_now(_request(cell))
        if known is None:
            return None
        events, error = known
        for ev in events:
            reply.feed(ev)
    except Exception as exc:  # a provider's bug still ends the run, with the reason
        return reply.result(rt, action, cell, error=exc)
    return reply.result(rt, action, cell, error=error)


async def call_cell(
    rt: Runtime,
    action: SweepCellsSent,
    cell: SentCell,
    provider: Provider,
    *,
    user_cancel: Any = None,
) -> RunResult:
    """Call the model for one recorded cell and return its finished run (never raises).

    A cancel ends it ``cancelled`` with the text streamed so far. ``user_cancel()`` says
    whether the user asked for it (the sweep's cancel), for the error text.
    """
    reply = _Reply()
    try:
        found = None
        if cell.cache_key is not None:  # a DB lookup: off the loop
            found = await asyncio.to_thread(rt.cache.lookup, cell.cache_key)
        if found is not None:
            reply.pieces.append(found["response"] or "")
            reply.in_tok, reply.out_tok = found["input_tokens"], found["output_tokens"]
            return reply.result(rt, action, cell, hit=True)
        reply.t0 = time.perf_counter()
        stream = provider.stream(_request(cell))
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for ev in stream:
                reply.feed(ev)
    except asyncio.CancelledError:
        by_user = rt.tasks.cancel_requested(cell.run_id) or bool(user_cancel and user_cancel())
        reason = "cancelled by the user" if by_user else "cancelled"
        return reply.result(rt, action, cell, status="cancelled", error=reason)
    except Exception as exc:  # anything unexpected still ends the run, with the reason
        return reply.result(rt, action, cell, error=exc)
    return reply.result(rt, action, cell)
