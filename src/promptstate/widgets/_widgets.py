"""The anywidget classes bound to an instance in the store."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import anywidget
import traitlets

from promptstate.core.selectors import (
    select_display_messages,
    select_instance,
    select_last_run,
    select_merged_variables,
    select_preview,
    select_prompt_entry,
)
from promptstate.core.state import State
from promptstate.errors import UnknownInstanceError
from promptstate.models.run import RunResult, model_label
from promptstate.models.values import ChatMessage
from promptstate.session import Instance
from promptstate.widgets._assets import module, stylesheet
from promptstate.widgets._binding import Coalescer
from promptstate.widgets._messages import (
    SendDone,
    SendRequest,
    messages_payload,
    parse_client_message,
    run_payload,
    variables_payload,
)

__all__ = ["ChatView", "Composer", "PromptRunner", "VariablesForm"]

log = logging.getLogger("promptstate")

# Traits that mirror the store. Only the kernel writes them; the front end reads.
_MIRRORED = frozenset(
    {
        "instance_id",
        "prompt_id",
        "model_label",
        "variables",
        "messages",
        "status",
        "last_run",
        "outdated",
        "preview",
        "viewing_past",
        "model",
        "model_choices",
    }
)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _InstanceWidget(anywidget.AnyWidget):
    """Base: one instance's selectors mirrored into traits; input sent as actions."""

    _esm = module("widget.js")
    _css = stylesheet("widget.css")
    _sections: ClassVar[tuple[str, ...]] = ()

    sections = traitlets.List(traitlets.Unicode()).tag(sync=True)
    instance_id = traitlets.Unicode("").tag(sync=True)
    prompt_id = traitlets.Unicode("").tag(sync=True)
    model_label = traitlets.Unicode("").tag(sync=True)
    variables = traitlets.List(traitlets.Dict()).tag(sync=True)
    messages = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    last_run = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    outdated = traitlets.Bool(False).tag(sync=True)
    preview = traitlets.List(traitlets.Dict()).tag(sync=True)
    viewing_past = traitlets.Bool(False).tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    model_choices = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(self, instance: Instance, **kwargs: Any) -> None:
        if not isinstance(instance, Instance):
            raise TypeError(
                f"{type(self).__name__}() takes an instance handle (session.start(...)), "
                f"not {type(instance).__name__}"
            )
        self._instance = instance
        self._store = instance.session.store
        # Last selector results pushed, compared by identity (selectors are memoized).
        self._seen: dict[str, object] = {}
        self._closed = False
        initial = self._collect(force=True)
        super().__init__(
            sections=list(self._sections), instance_id=instance.id, **initial, **kwargs
        )
        # The session's main loop (bound now if the session was made outside any loop)
        self._coalescer = Coalescer(instance.session.main_loop(), self._refresh)
        self.on_msg(self._on_client_message)
        self._unsubscribe: Callable[[], None] = self._store.subscribe(self._coalescer.request)
        self._coalescer.request()  # anything dispatched between _collect and subscribe

    # -- store -> traits --------------------------------------------------------------------

    @property
    def instance(self) -> Instance:
        """The bound instance handle."""
        return self._instance

    def _collect(self, force: bool = False) -> dict[str, Any]:
        """Trait values whose selector result changed identity since the last push."""
        state = self._store.get_state()
        iid = self._instance.id
        try:
            inst = select_instance(state, iid)
        except UnknownInstanceError:
            return {"status": "closed"}
        out: dict[str, Any] = {}

        def changed(key: str, value: object) -> bool:
            if not force and self._seen.get(key, _MISSING) is value:
                return False
            self._seen[key] = value
            return True

        merged = select_merged_variables(state, iid)
        if changed("variables", merged):
            out["variables"] = variables_payload(merged)
        shown = select_display_messages(state, iid)
        shown_changed = changed("messages", shown)
        if shown_changed:
            out["messages"] = messages_payload(shown)
        run = select_last_run(state, iid)
        run_changed = changed("last_run", run)
        if run_changed:
            out["last_run"] = run_payload(run)
        preview = select_preview(state, iid)
        preview_changed = changed("preview", preview)
        if preview_changed:
            out["preview"] = messages_payload(preview)
        if shown_changed or run_changed or preview_changed:
            out["outdated"] = _reply_outdated(inst.history, preview)
        past = self._instance.session.devtools.viewing_past
        if changed("viewing_past", past):
            out["viewing_past"] = past
        inst_changed = changed("instance", inst)
        prompt_model = select_prompt_entry(state, iid).prompt.model
        model = inst.model or prompt_model
        if inst_changed:
            out["status"] = inst.status
            out["prompt_id"] = inst.prompt_id
            provider, _, name = model.partition(":")
            out["model_label"] = model_label(provider, name or provider)
            out["model"] = model
        if changed("runs", state.runs) or inst_changed:
            out["model_choices"] = self._model_choices(state, model, prompt_model)
        return out

    def _model_choices(self, state: State, model: str, prompt_model: str) -> list[str]:
        """The settings row's models: this one, the prompt's, the models seen in this
        session's runs, and each configured provider."""
        seen: dict[str, None] = {model: None, prompt_model: None}
        for run in state.runs.values():
            seen[run.provider if run.model == run.provider else f"{run.provider}:{run.model}"] = (
                None
            )
        for name in self._instance.session.providers.names():
            if not any(m == name or m.startswith(f"{name}:") for m in seen):
                seen[name] = None
        return list(seen)

    def _refresh(self) -> None:
        # Runs on the main loop (see Coalescer); the only place traits follow the store.
        if self._closed:
            return
        values = self._collect()
        if values:
            with self.hold_sync():  # one comm message for all changed traits
                for key, value in values.items():
                    setattr(self, key, value)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply front-end updates, except to traits that mirror the store."""
        # The store is the single source of truth: a view cannot write its copy back.
        allowed = {k: v for k, v in sync_data.items() if k not in _MIRRORED}
        if allowed:
            super().set_state(allowed)

    # -- front end -> actions -----------------------------------------------------------------

    def _on_client_message(self, _widget: object, content: object, _buffers: object) -> None:
        # May run on a kernel subshell thread: dispatch is thread-safe, traits are not,
        # so anything touching traits goes through the coalescer's loop.
        try:
            msg = parse_client_message(content)
            if msg["type"] == "set_variable":
                self._instance.set_variable(msg["name"], msg["value"])
            elif msg["type"] == "unset_variable":
                self._instance.unset_variable(msg["name"])
            elif msg["type"] == "send":
                self._start_send(msg)
            elif msg["type"] == "set_model":
                self._show_error("")
                self._instance.set_model(msg["model"])
            else:
                self._instance.cancel()
        except Exception as exc:  # shown in the widget, never lost in a comm log
            self._show_error(_describe(exc))

    def _start_send(self, msg: SendRequest) -> None:
        self._show_error("")
        seq = msg["seq"]
        inst = self._instance
        # Apply only edits that differ from the merged value: re-sending an inherited
        # value unchanged must not pin it as an instance override. Compared with the
        # present: the send applies there, even while the devtools show the past.
        merged = select_merged_variables(self._store.present_state(), inst.id)
        edits = {
            k: v for k, v in msg["variables"].items() if k not in merged or merged[k].value != v
        }
        try:
            # The click, its unsynced edits and the rendered request are one store
            # transaction, here on this thread; only the network call is scheduled.
            fut = inst.send_soon(
                msg["content"], variables=edits, settings=msg.get("settings") or None
            )
        except Exception as exc:
            # The front end handed its unsynced edits to this click and will not send
            # them again: a refused send (busy, missing variables) must not drop them.
            if edits:
                try:
                    inst.set_variables(edits)
                except Exception:  # bad edits: the send's own error already says so
                    log.debug("promptstate: edits of a refused send not applied", exc_info=True)
            self._send_done(seq, None, exc)
            return
        fut.add_done_callback(lambda f: self._on_send_finished(seq, f))

    def _on_send_finished(self, seq: int, fut: concurrent.futures.Future[RunResult]) -> None:
        if fut.cancelled():
            self._send_done(seq, None, asyncio.CancelledError("the send task was cancelled"))
        elif (exc := fut.exception()) is not None:
            self._send_done(seq, None, exc)
        else:
            self._send_done(seq, fut.result(), None)

    def _send_done(self, seq: int, result: RunResult | None, exc: BaseException | None) -> None:
        reply = SendDone(
            type="send_done",
            seq=seq,
            ok=exc is None,
            run_id=None if result is None else result.run_id,
            status="error" if result is None else result.status,
            error=_describe(exc) if exc is not None else (result.error if result else None),
        )

        def apply() -> None:
            if exc is not None:
                self.error = reply["error"] or ""
            if not self._closed:
                self.send(dict(reply))

        self._coalescer.call_soon(apply)

    def _show_error(self, text: str) -> None:
        def apply() -> None:
            self.error = text

        self._coalescer.call_soon(apply)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Unsubscribe from the store and close the comm (removes every view)."""
        # Also reached from Widget.__del__ on a half-built widget: attributes may be missing.
        self._closed = True
        coalescer: Coalescer | None = getattr(self, "_coalescer", None)
        if coalescer is not None:
            coalescer.stop()
        unsubscribe: Callable[[], None] | None = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
        super().close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(instance_id={self._instance.id!r})"


_MISSING = object()


def _reply_outdated(history: tuple[ChatMessage, ...], preview: tuple[ChatMessage, ...]) -> bool:
    """Whether the live variables now render a prompt other than the one the
    conversation was sent with (a follow-up continues the sent conversation; a fresh
    send would use the preview)."""
    if not history:
        return False
    sent = [(m.role, m.content) for m in history[: len(preview)]]
    return sent != [(m.role, m.content) for m in preview]


class VariablesForm(_InstanceWidget):
    """One input per prompt variable, bound to the store.

    Each input shows the merged value and a badge naming its source (``default``,
    ``org``, ``project``, ``user`` or ``instance``). Typing sets the instance's own
    value (debounced); a change made anywhere else shows up here at once.

    Parameters
    ----------
    instance : promptstate.Instance
        The handle returned by ``session.start(...)``.
    """

    _sections = ("variables",)


class ChatView(_InstanceWidget):
    """The conversation of an instance, with the reply streaming in.

    Shows the conversation exactly as sent and received, the reply in flight, and a
    reply that did not complete (partial text kept, badged ``cancelled`` or ``error``).
    Before the first send the list is the preview of the request; later, when the live
    variables render another request, a collapsed "Next request (preview)" block shows
    it apart. Also the status, token counts and latency of the last run, errors, and a
    banner while DevTools shows an earlier state.

    Parameters
    ----------
    instance : promptstate.Instance
        The handle returned by ``session.start(...)``.
    """

    _sections = ("chat",)


class Composer(_InstanceWidget):
    """A message box with Send and Stop buttons, under a settings row.

    The settings row picks the model (the configured providers, the prompt's model
    and the models seen in this session; a choice calls ``inst.set_model``) and
    common settings (temperature, max tokens) that travel with each Send. Send with
    an empty box runs the prompt itself; with text it continues the conversation.
    The click carries any edit not yet synced from a variables form on the page, so
    the run uses exactly what is on screen.

    Parameters
    ----------
    instance : promptstate.Instance
        The handle returned by ``session.start(...)``.
    """

    _sections = ("composer",)


class PromptRunner(_InstanceWidget):
    """Variables form, chat view and composer in one widget.

    This is what displaying an instance handle in a cell shows. Any number of
    runners can show the same instance; they stay in sync through the store.

    Parameters
    ----------
    instance : promptstate.Instance
        The handle returned by ``session.start(...)``.

    Examples
    --------
    >>> runner = ps.widgets.PromptRunner(inst)  # doctest: +SKIP
    >>> runner  # doctest: +SKIP
    """

    _sections = ("variables", "chat", "composer")
