"""Controls bound to an instance: what a send reads from them at the instant of sending.

A control bound with ``ps.link`` / ``inst.bind`` may hold a value the store has not seen
yet: a change made under ``hold_trait_notifications`` (as ipywidgets applies front-end
updates) notifies only when the block ends, and a bound *setting* has no home in the
store at all, so the control is its only holder. Each link registers a *pending edit
provider* here, per instance; :func:`bound_send_args` calls them when ``send`` /
``send_soon`` is called and passes what they return as the send's ``variables=``,
``model=`` and ``settings=``, so the edits are applied in the same store transaction that
renders and records the send. The engine is unchanged.

Explicit arguments of the send win over bound values. Closing the instance detaches every
link registered for it (:func:`detach_instance`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = [
    "BoundEdit",
    "EditProvider",
    "bound_send_args",
    "detach_instance",
    "install_widget_hooks",
    "linker",
    "pending_edits",
    "provider_count",
    "register",
    "viewer",
]

log = logging.getLogger("promptstate")

# The widgets layer sits above this one, so the session never imports it: the package
# installs these two hooks (promptstate/__init__.py), which load widgets on first use.
_hooks: dict[str, Callable[..., Any]] = {}


def install_widget_hooks(link: Callable[..., Any], view: Callable[[Any], Any]) -> None:
    """Set how ``Instance.bind`` links a control and how a notebook shows an instance."""
    _hooks["link"] = link
    _hooks["view"] = view


def linker() -> Callable[..., Any]:
    """``link(widget, instance, name, **kwargs)``, from the widgets layer."""
    try:
        return _hooks["link"]
    except KeyError:  # pragma: no cover - importing promptstate installs it
        raise RuntimeError("no widgets layer installed: import promptstate") from None


def viewer() -> Callable[[Any], Any] | None:
    """``view(instance)`` -> its widget, or None when no widgets layer is installed."""
    return _hooks.get("view")


@dataclass(frozen=True)
class BoundEdit:
    """One value a bound control holds that a send must use.

    ``kind`` is ``"variable"`` (``name`` is the variable), ``"model"`` or ``"setting"``
    (``name`` is the setting, e.g. ``temperature``).
    """

    kind: Literal["variable", "model", "setting"]
    name: str
    value: object


EditProvider = Callable[[], "BoundEdit | None"]
"""Returns the control's pending edit, or ``None`` when the store already has it."""


@dataclass
class _Entry:
    provider: EditProvider
    on_detach: Callable[[], None]


class _Registry:
    """Providers of one session, by instance id, in registration order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_instance: dict[str, dict[int, _Entry]] = {}
        self.next_key = 0


# Keyed weakly by session: a session that is gone takes its registry with it.
_REGISTRIES: weakref.WeakKeyDictionary[Session, _Registry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def _registry(session: Session, create: bool) -> _Registry | None:
    with _REGISTRIES_LOCK:
        reg = _REGISTRIES.get(session)
        if reg is None and create:
            reg = _REGISTRIES[session] = _Registry()
        return reg


def register(
    session: Session,
    instance_id: str,
    provider: EditProvider,
    on_detach: Callable[[], None],
) -> Callable[[], None]:
    """Register a pending edit provider for an instance; returns the function removing it.

    ``on_detach`` is called (once, with no lock held) when the instance closes.
    """
    reg = _registry(session, create=True)
    assert reg is not None
    with reg.lock:
        key = reg.next_key
        reg.next_key += 1
        reg.by_instance.setdefault(instance_id, {})[key] = _Entry(provider, on_detach)

    def unregister() -> None:
        with reg.lock:
            entries = reg.by_instance.get(instance_id)
            if entries is not None:
                entries.pop(key, None)
                if not entries:
                    del reg.by_instance[instance_id]

    return unregister


def provider_count(session: Session, instance_id: str | None = None) -> int:
    """How many providers are registered (for one instance, or in all); for leak checks."""
    reg = _registry(session, create=False)
    if reg is None:
        return 0
    with reg.lock:
        if instance_id is not None:
            return len(reg.by_instance.get(instance_id, {}))
        return sum(len(e) for e in reg.by_instance.values())


def pending_edits(session: Session, instance_id: str) -> list[BoundEdit]:
    """What the instance's bound controls hold now, oldest registration first.

    A provider that raises is logged and skipped: one broken control must not stop a send.
    """
    reg = _registry(session, create=False)
    if reg is None:
        return []
    with reg.lock:
        providers = [e.provider for e in reg.by_instance.get(instance_id, {}).values()]
    out: list[BoundEdit] = []
    for provider in providers:
        try:
            edit = provider()
        except Exception:
            log.warning("promptstate: a bound control could not be read", exc_info=True)
            continue
        if edit is not None:
            out.append(edit)
    return out


def bound_send_args(
    session: Session,
    instance_id: str,
    variables: Mapping[str, object] | None,
    model: str | None,
    settings: Mapping[str, Any] | None,
) -> tuple[Mapping[str, object] | None, str | None, Mapping[str, Any] | None]:
    """A send's ``variables``, ``model`` and ``settings`` with the bound controls' values.

    Bound values come first; the send's own arguments override them. With nothing bound
    the arguments are returned unchanged.
    """
    edits = pending_edits(session, instance_id)
    if not edits:
        return variables, model, settings
    bound_vars: dict[str, object] = {}
    bound_settings: dict[str, Any] = {}
    bound_model: str | None = None
    for e in edits:
        if e.kind == "variable":
            bound_vars[e.name] = e.value
        elif e.kind == "setting":
            bound_settings[e.name] = e.value
        elif isinstance(e.value, str):
            bound_model = e.value
    if bound_vars:
        variables = {**bound_vars, **(variables or {})}
    if bound_settings:
        settings = {**bound_settings, **(settings or {})}
    if model is None:
        model = bound_model
    return variables, model, settings


def detach_instance(session: Session, instance_id: str) -> None:
    """Detach every control bound to ``instance_id`` (the instance is closing)."""
    reg = _registry(session, create=False)
    if reg is None:
        return
    with reg.lock:
        entries = list(reg.by_instance.pop(instance_id, {}).values())
    for entry in entries:
        try:
            entry.on_detach()
        except Exception:
            log.warning("promptstate: detaching a bound control failed", exc_info=True)
