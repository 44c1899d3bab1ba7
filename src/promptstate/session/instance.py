"""``Instance``: a thin handle on one prompt instance; every read goes through a selector."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import warnings
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from promptstate.core.actions import (
    ExecuteRejected,
    HistoryCleared,
    InstanceClosed,
    ModelSet,
    VariableSet,
    VariablesSet,
    VariableUnset,
)
from promptstate.core.selectors import (
    select_display_messages,
    select_instance,
    select_last_run,
    select_merged_variables,
    select_preview,
    select_prompt_entry,
)
from promptstate.core.state import State
from promptstate.engine.execute import execute, run_result
from promptstate.engine.ports import Runtime
from promptstate.engine.send import begin_send, check_name, clean_values
from promptstate.errors import UnknownProviderError, UnusedVariableWarning
from promptstate.models.prompt import Prompt
from promptstate.models.run import RunResult, model_label
from promptstate.models.values import ChatMessage, MergedVariables
from promptstate.session.bindings import bound_send_args, detach_instance, linker, viewer

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = ["Instance"]

log = logging.getLogger("promptstate")


async def _follow(task: asyncio.Task[RunResult]) -> RunResult:
    return await task


class Instance:
    """A handle on one prompt instance: holds only its id and reads through selectors."""

    __slots__ = ("_session", "id")

    def __init__(self, session: Session, instance_id: str) -> None:
        self._session = session
        self.id = instance_id

    @property
    def session(self) -> Session:
        """The owning session."""
        return self._session

    @property
    def _rt(self) -> Runtime:
        return self._session.runtime

    def _state(self) -> State:
        return self._session.store.get_state()

    def _present(self) -> State:
        # writes and cancels act on the present, even while devtools show the past
        return self._session.store.present_state()

    @property
    def prompt(self) -> Prompt:
        """The prompt version this instance runs."""
        return select_prompt_entry(self._state(), self.id).prompt

    @property
    def variables(self) -> MergedVariables:
        """Merged variables with provenance: ``{name: VariableValue(value, source)}``."""
        return select_merged_variables(self._state(), self.id)

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """The conversation as shown: sent and received messages, the reply in flight
        or a failed one with its status; before the first send, the preview."""
        return select_display_messages(self._state(), self.id)

    @property
    def history(self) -> tuple[ChatMessage, ...]:
        """The conversation exactly as sent and received (what a follow-up continues)."""
        return select_instance(self._state(), self.id).history

    @property
    def preview(self) -> tuple[ChatMessage, ...]:
        """What ``send()`` would send now, rendered from the live variables."""
        return select_preview(self._state(), self.id)

    @property
    def status(self) -> str:
        """``idle``, ``queued``, ``running``, ``success``, ``error`` or ``cancelled``."""
        return select_instance(self._state(), self.id).status

    @property
    def model(self) -> str:
        """The model string a send would use now."""
        inst = select_instance(self._state(), self.id)
        return inst.model or self.prompt.model

    @property
    def last_run(self) -> RunResult | None:
        """The run in flight, else the latest finished one."""
        run = select_last_run(self._state(), self.id)
        return None if run is None else run_result(run)

    def set_variable(self, name: str, value: object) -> None:
        """Set the instance's own value for ``name`` (dispatches ``instances/variable_set``)."""
        self.set_variables({name: value})

    def set_variables(self, values: Mapping[str, object]) -> None:
        """Set several values in one action."""
        select_instance(self._present(), self.id)
        clean = clean_values(values)
        self._warn_unused(clean, stacklevel=3)
        if len(clean) == 1:
            ((name, value),) = clean.items()
            self._session.store.dispatch(VariableSet(instance_id=self.id, name=name, value=value))
        elif clean:
            self._session.store.dispatch(VariablesSet(instance_id=self.id, values=clean))

    def _warn_unused(self, values: Mapping[str, str], stacklevel: int) -> None:
        prompt = select_prompt_entry(self._present(), self.id).prompt
        used = prompt.used_variables | set(prompt.variables)
        unused = sorted(set(values) - used)
        if unused:
            known = sorted(used)
            import difflib

            hints = []
            for name in unused:
                close = difflib.get_close_matches(name, known, n=1)
                if close:
                    hints.append(f"{name!r} (did you mean {close[0]!r}?)")
                else:
                    hints.append(repr(name))
            warnings.warn(
                f"prompt {prompt.id!r} never uses variable(s) {', '.join(hints)}",
                UnusedVariableWarning,
                stacklevel=stacklevel + 1,
            )

    def unset_variable(self, name: str) -> None:
        """Drop the instance's own value, falling back to scoped values or the default."""
        select_instance(self._present(), self.id)
        self._session.store.dispatch(VariableUnset(instance_id=self.id, name=check_name(name)))

    def set_model(self, model: str | None) -> None:
        """Use another model for the next sends (``None`` returns to the prompt's)."""
        if model is not None:
            if not isinstance(model, str) or not model.strip():
                raise UnknownProviderError(repr(model))
            self._session.providers.resolve(model)
        self._session.store.dispatch(ModelSet(instance_id=self.id, model=model))

    def clear_history(self) -> None:
        """Forget the conversation turns (the run log keeps them)."""
        self._session.store.dispatch(HistoryCleared(instance_id=self.id))

    def send(
        self,
        content: str | None = None,
        *,
        variables: Mapping[str, object] | None = None,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        cache: bool | None = None,
    ) -> Coroutine[Any, Any, RunResult]:
        """Record a send now; ``await`` the returned coroutine for the finished run.

        The request is rendered from the live state *when ``send`` is called*, in the
        same store transaction that records it, together with ``variables`` (values to
        set first, e.g. a form's unsynced inputs). Nothing after this call changes it.

        ``content=None`` starts a fresh conversation from the live variables; a string
        continues the conversation as it was sent with one more user message.
        Controls bound with :meth:`bind` / ``ps.link`` are read now too; explicit
        arguments win over them.
        """
        variables, model, settings = bound_send_args(
            self._session, self.id, variables, model, settings
        )
        prepared = begin_send(
            self._rt,
            self.id,
            content,
            edits=variables,
            model=model,
            settings=settings,
            cache=cache,
        )
        coro = execute(self._rt, prepared)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # a script: it runs when awaited (asyncio.run). If it is dropped unawaited,
            # the run becomes an orphan that the next send or cancel ends.
            self._rt.tasks.hold(prepared.action.request_id, coro)
            return coro
        # inside a loop the run starts now, so it ends (and is logged) even if nobody
        # awaits what send() returned; cancelling the awaiter cancels the run
        return _follow(loop.create_task(coro))

    def run(self, content: str | None = None, **kwargs: Any) -> RunResult:
        """Send and wait, from synchronous code (a script); not inside a running loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("inst.run() blocks; inside a notebook use `await inst.send()`")
        return asyncio.run(self.send(content, **kwargs))

    def send_soon(
        self,
        content: str | None = None,
        *,
        variables: Mapping[str, object] | None = None,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> concurrent.futures.Future[RunResult]:
        """Thread-safe, non-blocking send for widget callbacks.

        The click and its ``variables`` (the inputs' values at the click) are recorded
        and rendered on the calling thread, in one store transaction; only the network
        call is scheduled on the session's main loop.
        """
        loop = self._session.main_loop()
        if loop is None:
            raise RuntimeError(
                "no asyncio loop to run on: create the session inside a notebook cell "
                "or a running event loop"
            )
        variables, model, settings = bound_send_args(
            self._session, self.id, variables, model, settings
        )
        prepared = begin_send(
            self._rt, self.id, content, edits=variables, model=model, settings=settings
        )
        return self._session.spawn(execute(self._rt, prepared))

    def bind(self, name: str, widget: Any, **kwargs: Any) -> Any:
        """Bind a control (any ipywidget or ``traitlets.HasTraits``) to ``name``, both ways.

        ``name`` is a variable, ``"model"`` or ``"settings.<name>"``; ``kwargs`` go to
        ``ps.link`` (``trait="value"``, ``on_error=...``). Returns ``widget``, to place in
        a layout; the link ends when the instance or the widget closes.
        """
        # the widgets layer, above this one, through the hook the package installed
        linker()(widget, self, name, **kwargs)
        return widget

    def cancel(self) -> bool:
        """Cancel the run in flight (thread-safe); returns whether there was one."""
        inst = select_instance(self._present(), self.id)
        rid = inst.current_request_id
        if rid is None:
            return False
        rt = self._rt
        if not rt.tasks.known(rid):
            # nothing in this process runs it (an imported state): end it here
            rt.store.dispatch(
                ExecuteRejected(
                    request_id=rid,
                    instance_id=self.id,
                    status="cancelled",
                    error="cancelled by the user",
                    at=rt.clock(),
                )
            )
            return True
        rt.tasks.cancel(rid)
        return True

    def close(self) -> None:
        """Remove the instance from the store (cancels its run in flight)."""
        with contextlib.suppress(Exception):
            self.cancel()
        self._session.store.dispatch(InstanceClosed(instance_id=self.id))
        detach_instance(self._session, self.id)  # bound controls let go of it
        for sel in (select_merged_variables, select_display_messages, select_preview):
            sel.forget(self.id)  # keep the caches as small as the store

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Instance) and other.id == self.id and other._session is self._session
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        try:
            inst = select_instance(self._state(), self.id)
        except Exception:
            return f"Instance({self.id!r}, closed)"
        model = inst.model or self.prompt.model
        provider, _, name = model.partition(":")
        return (
            f"Instance({self.id!r}, prompt={inst.prompt_id!r}, status={inst.status!r}, "
            f"model={model_label(provider, name or provider)})"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # a notebook shows an instance as its widget (through the package's hook)
        view = viewer()
        try:
            if view is None:
                raise RuntimeError("no widgets layer installed")
            widget = view(self)
        except Exception:
            log.debug("promptstate: widgets unavailable; plain repr", exc_info=True)
            return {"text/plain": repr(self)}
        return widget._repr_mimebundle_(**kwargs)
