"""Two-way links between any traitlets control (a stock ipywidget) and an instance.

::

    text = inst.bind("text", widgets.Textarea())                    # returns the widget
    ps.link(widgets.Dropdown(options=models), inst, "model")        # returns the Link
    ps.link(widgets.FloatSlider(value=0.7), inst, "settings.temperature")

Store -> control: the control's trait follows the selector (the merged variable, the
instance's model) whenever the store changes, from any thread; trait writes happen on
the session's main loop through a :class:`~promptstate.widgets._binding.Coalescer`
(inline when there is no loop). Control -> store: a change dispatches
``set_variable`` / ``set_model`` on the thread that made it. A bound *setting* has no
home in the store: the control holds it, and every send reads it.

A send also reads each bound control's current value at the instant of sending, in the
same store transaction (:mod:`promptstate.session.bindings`), so an edit whose
notification has not fired yet still goes out. A value the store rejects leaves the
store unchanged, is kept in ``link.error`` (and logged, and passed to ``on_error``), and
the control reverts to the store's value.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import traitlets

from promptstate.core.selectors import (
    select_instance,
    select_merged_variables,
    select_prompt_entry,
)
from promptstate.engine.send import check_name
from promptstate.errors import PromptStateError, UnknownInstanceError
from promptstate.models.prompt import normalize_value
from promptstate.models.provider import validate_settings
from promptstate.session import bindings
from promptstate.session.bindings import BoundEdit
from promptstate.widgets._binding import Coalescer

if TYPE_CHECKING:
    from promptstate.core.state import State
    from promptstate.session import Instance

__all__ = ["Link", "link"]

log = logging.getLogger("promptstate")

_NOTHING = object()  # a control value no real value equals


class Link:
    """A two-way link between one trait of a control and an instance.

    Parameters
    ----------
    widget : traitlets.HasTraits
        Any ipywidget (``Textarea``, ``Dropdown``, ``IntSlider``, ``Checkbox``...) or
        other ``HasTraits`` object.
    instance : promptstate.Instance
        The handle returned by ``session.start(...)``.
    target : str
        ``"model"``, a variable name, or ``"settings.<name>"`` (e.g.
        ``"settings.temperature"``).
    trait : str
        The control's trait to bind (default ``"value"``).
    on_error : callable, optional
        Called with the typed error when the store rejects a value from the control.

    Attributes
    ----------
    error : PromptStateError or None
        The last rejected value's error (``None`` after a value is accepted).

    Notes
    -----
    Variables receive the control's value through ``normalize_value`` (numbers and
    booleans become their JSON text; ``None`` unsets the instance's own value); the
    control shows the variable's text parsed back when its trait is not text. Settings
    keep the control's value as is (numbers stay numbers). ``unlink()``, closing the
    instance or closing the widget detaches everything.
    """

    def __init__(
        self,
        widget: traitlets.HasTraits,
        instance: Instance,
        target: str,
        *,
        trait: str = "value",
        on_error: Callable[[PromptStateError], None] | None = None,
    ) -> None:
        from promptstate.session import Instance

        if not isinstance(instance, Instance):
            raise TypeError(f"link() takes an instance handle, not {type(instance).__name__}")
        if not isinstance(widget, traitlets.HasTraits):
            raise TypeError(
                f"link() takes an ipywidget or traitlets.HasTraits, not {type(widget).__name__}"
            )
        if not isinstance(trait, str) or not widget.has_trait(trait):
            raise TypeError(f"{type(widget).__name__} has no trait {trait!r}")
        if not isinstance(target, str):
            raise TypeError(f"link target must be a string, not {type(target).__name__}")
        select_instance(instance.session.store.get_state(), instance.id)  # raises if closed
        self.widget = widget
        self.instance = instance
        self.trait = trait
        self.target = target
        self.on_error = on_error
        self.error: PromptStateError | None = None
        if target == "model":
            self.kind = "model"
            self.name = "model"
        elif target.startswith("settings."):
            self.kind = "setting"
            self.name = target.removeprefix("settings.")
            if not self.name:
                raise TypeError("link target 'settings.' names no setting")
        else:
            self.kind = "variable"
            self.name = check_name(target)
        self._lock = threading.Lock()
        self._closed = False
        self._pushing: int | None = None  # thread writing the trait from the store
        self._force = False  # push even if the store's value did not change (a revert)
        self._last: object = _NOTHING  # the store value last pushed
        self._synced: object = _NOTHING  # the control's value when it last agreed with the store
        self._unsubscribe: Callable[[], None] | None = None
        session = instance.session
        self._coalescer = Coalescer(session.main_loop(), self._refresh)
        if self.kind == "setting":
            current = getattr(widget, trait)
            validate_settings({self.name: current})  # a bad initial value changes nothing
            self._valid: object = current
        else:
            self._push(self._store_value(session.store.get_state()))
            self._unsubscribe = session.store.subscribe(self._coalescer.request)
        widget.observe(self._on_change, names=trait)
        if widget.has_trait("comm"):  # an ipywidget: closing it ends the link
            widget.observe(self._on_comm, names="comm")
        self._unregister = bindings.register(session, instance.id, self._pending, self.unlink)
        if self._unsubscribe is not None:
            self._coalescer.request()  # anything dispatched before the subscription

    # -- store -> control ---------------------------------------------------------------------

    def _store_value(self, state: State) -> str | None:
        if self.kind == "model":
            inst = select_instance(state, self.instance.id)
            return inst.model or select_prompt_entry(state, self.instance.id).prompt.model
        merged = select_merged_variables(state, self.instance.id)
        return merged[self.name].value if self.name in merged else None

    def _candidates(self, text: str | None) -> list[object]:
        """Control values that show ``text``, best first."""
        is_text = isinstance(self.widget.traits()[self.trait], traitlets.Unicode)
        if text is None:
            return [""] if is_text else []
        if is_text or self.kind == "model":
            return [text]
        try:
            parsed = json.loads(text)
        except ValueError:
            return [text]
        return [parsed, text] if parsed != text else [text]

    def _refresh(self) -> None:
        # On the main loop (Coalescer): the only place the control follows the store.
        if self._closed:
            return
        try:
            value = self._store_value(self.instance.session.store.get_state())
        except UnknownInstanceError:
            # time travel to before the instance existed: keep the link (closing the
            # instance detaches it through session.bindings)
            return
        if value == self._last and not self._force:
            return
        self._force = False
        self._push(value)

    def _push(self, value: str | None) -> None:
        self._last = value
        current = getattr(self.widget, self.trait)
        candidates = self._candidates(value)
        if current not in candidates:
            self._pushing = threading.get_ident()
            try:
                for candidate in candidates:
                    try:
                        setattr(self.widget, self.trait, candidate)
                        break
                    except traitlets.TraitError:
                        continue
                else:
                    log.warning(
                        "promptstate: %s.%s cannot show %s=%r",
                        type(self.widget).__name__,
                        self.trait,
                        self.target,
                        value,
                    )
            finally:
                self._pushing = None
        self._synced = getattr(self.widget, self.trait)

    # -- control -> store ---------------------------------------------------------------------

    def _on_change(self, change: Any) -> None:
        if self._closed or self._pushing == threading.get_ident():
            return  # our own store -> control write: never dispatched back
        value = change["new"]
        try:
            if self.kind == "setting":
                validate_settings({self.name: value})
                self._valid = value
            elif value != self._synced:
                state = self.instance.session.store.get_state()
                if value not in self._candidates(self._store_value(state)):
                    self._dispatch(value)  # else the store has it already: no echo
                self._synced = value
        except Exception as exc:
            self._reject(exc)
            return
        self.error = None

    def _dispatch(self, value: object) -> None:
        inst = self.instance
        if self.kind == "model":
            inst.set_model(value if isinstance(value, str) or value is None else repr(value))
        elif value is None:
            inst.unset_variable(self.name)
        else:
            inst.set_variable(self.name, value)

    def _reject(self, exc: Exception) -> None:
        error = (
            exc
            if isinstance(exc, PromptStateError)
            else PromptStateError(f"{type(exc).__name__}: {exc}")
        )
        self.error = error
        log.warning("promptstate: %s rejected a value for %s: %s", self, self.target, error)
        if self.kind == "setting":
            self._coalescer.call_soon(self._revert_setting)
        else:
            self._force = True
            self._coalescer.request()
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                log.exception("promptstate: link on_error callback failed")

    def _revert_setting(self) -> None:
        if self._closed:
            return
        self._pushing = threading.get_ident()
        try:
            setattr(self.widget, self.trait, self._valid)
        finally:
            self._pushing = None

    def _pending(self) -> BoundEdit | None:
        """What a send must use from this control now (see session.bindings)."""
        if self._closed:
            return None
        value = getattr(self.widget, self.trait)
        if self.kind == "setting":
            try:
                validate_settings({self.name: value})
            except PromptStateError:
                value = self._valid
            return BoundEdit("setting", self.name, value)
        if value == self._synced or value is None:
            return None  # the store already has it
        if self.kind == "model":
            return BoundEdit("model", "model", value) if isinstance(value, str) else None
        try:
            normalize_value(self.name, value)
        except PromptStateError:
            return None  # rejected when its notification fires
        return BoundEdit("variable", self.name, value)

    # -- lifecycle ----------------------------------------------------------------------------

    def _on_comm(self, change: Any) -> None:
        if change["new"] is None:
            self.unlink()

    @property
    def closed(self) -> bool:
        """Whether the link is detached."""
        return self._closed

    def unlink(self) -> None:
        """Detach: no more store subscription, trait observers or send-time reads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._coalescer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unregister()
        self.widget.unobserve(self._on_change, names=self.trait)
        if self.widget.has_trait("comm"):
            self.widget.unobserve(self._on_comm, names="comm")

    def __repr__(self) -> str:
        state = ", unlinked" if self._closed else ""
        return (
            f"Link({type(self.widget).__name__}.{self.trait} <-> "
            f"instance {self.instance.id!r} {self.target!r}{state})"
        )


def link(
    widget: traitlets.HasTraits,
    instance: Instance,
    target: str,
    *,
    trait: str = "value",
    on_error: Callable[[PromptStateError], None] | None = None,
) -> Link:
    """Bind a control's trait to an instance's variable, model or setting, both ways.

    Parameters
    ----------
    widget : traitlets.HasTraits
        Any ipywidget or ``HasTraits`` object.
    instance : promptstate.Instance
    target : str
        ``"model"``, a variable name, or ``"settings.<name>"``.
    trait : str
        The control's trait (default ``"value"``).
    on_error : callable, optional
        Called with the typed error when the store rejects a value.

    Returns
    -------
    Link
        ``link.unlink()`` detaches it.

    Examples
    --------
    >>> ps.link(widgets.Dropdown(options=["echo", "echo:b"]), inst, "model")  # doctest: +SKIP
    """
    return Link(widget, instance, target, trait=trait, on_error=on_error)
