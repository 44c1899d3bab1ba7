"""Effects for the user / org / project variable layers."""

from __future__ import annotations

from promptstate.core.actions import (
    ScopedFetchFulfilled,
    ScopedFetchPending,
    ScopedFetchRejected,
    ScopedVariableSet,
)
from promptstate.engine.ports import Runtime
from promptstate.errors import PromptStateError, VariableError
from promptstate.models.redact import redact

__all__ = ["SCOPES", "fetch_scoped_variables", "set_scoped_variable"]

SCOPES = ("user", "org", "project")


def fetch_scoped_variables(rt: Runtime) -> None:
    """Read the user/org/project layers from the run log into the store."""
    request_id = rt.new_id()
    rt.store.dispatch(
        ScopedFetchPending(
            request_id=request_id, user_id=rt.user_id, org_id=rt.org_id, project_id=rt.project_id
        )
    )
    try:
        layers = rt.scoped.fetch_scoped(rt.user_id, rt.org_id, rt.project_id)
    except PromptStateError as exc:
        rt.store.dispatch(ScopedFetchRejected(request_id=request_id, error=redact(str(exc))))
        raise
    rt.store.dispatch(
        ScopedFetchFulfilled(
            request_id=request_id,
            user=layers.get("user", {}),
            org=layers.get("org", {}),
            project=layers.get("project", {}),
        )
    )


def set_scoped_variable(rt: Runtime, scope: str, name: str, value: str | None) -> None:
    """Write a scoped variable to the log (durably), then apply it to the store."""
    if scope not in SCOPES:
        raise VariableError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    owner = {"user": rt.user_id, "org": rt.org_id, "project": rt.project_id}[scope]
    if owner is None:
        raise VariableError(f"this session has no {scope}_id; pass {scope}_id= to ps.Session")
    rt.sink.set_scoped(scope, owner, name, value).result()
    rt.store.dispatch(ScopedVariableSet(scope=scope, name=name, value=value))
