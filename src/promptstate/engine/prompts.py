"""Effects that bring prompts into the store and start instances."""

from __future__ import annotations

from collections.abc import Mapping

from promptstate.core.actions import (
    InstanceStarted,
    PromptFetchFulfilled,
    PromptFetchPending,
    PromptFetchRejected,
)
from promptstate.core.state import PromptEntry, prompt_key
from promptstate.engine.ports import Runtime
from promptstate.errors import PromptStateError, UnknownPromptError
from promptstate.models.redact import redact

__all__ = ["ensure_prompt_version", "fetch_prompt", "start_instance"]


def fetch_prompt(rt: Runtime, prompt_id: str, *, refresh: bool = False) -> PromptEntry:
    """The cached prompt entry; fetched from its source only if absent (or ``refresh``)."""
    store = rt.store
    if not isinstance(prompt_id, str):
        raise UnknownPromptError(repr(prompt_id))
    if refresh or prompt_id not in store.get_state().prompts:
        request_id = rt.new_id()
        store.dispatch(PromptFetchPending(prompt_id=prompt_id, request_id=request_id))
        try:
            prompt, source = rt.prompts.fetch(prompt_id)
        except PromptStateError as exc:
            store.dispatch(
                PromptFetchRejected(
                    prompt_id=prompt_id, request_id=request_id, error=redact(str(exc))
                )
            )
            raise
        store.dispatch(
            PromptFetchFulfilled(
                prompt=prompt.to_dict(), source=source, at=rt.clock(), request_id=request_id
            )
        )
    return store.get_state().prompts[prompt_id]


def ensure_prompt_version(rt: Runtime, prompt_id: str, version: str) -> PromptEntry:
    """A specific version in the cache (fetched from the log if needed, not made latest)."""
    key = prompt_key(prompt_id, version)
    found = rt.store.get_state().prompts.get(key)
    if found is not None:
        return found
    prompt = rt.prompts.fetch_version(prompt_id, version)
    if prompt is None:
        raise UnknownPromptError(key)
    rt.store.dispatch(
        PromptFetchFulfilled(
            prompt=prompt.to_dict(),
            source="db",
            at=rt.clock(),
            request_id=rt.new_id(),
            latest=False,
        )
    )
    return rt.store.get_state().prompts[key]


def start_instance(
    rt: Runtime,
    prompt_id: str,
    values: Mapping[str, str],
    *,
    model: str | None = None,
    track_in_runs: bool = True,
    refresh: bool = False,
    version: str | None = None,
) -> str:
    """Fetch the prompt unless cached (``refresh`` forces it), then start an instance."""
    if version is None:
        entry = fetch_prompt(rt, prompt_id, refresh=refresh)
    else:
        entry = ensure_prompt_version(rt, prompt_id, version)
    iid = rt.new_instance_id()
    rt.store.dispatch(
        InstanceStarted(
            instance_id=iid,
            prompt_id=prompt_id,
            prompt_version=entry.prompt.version,
            model=model,
            values=dict(values),
            track_in_runs=track_in_runs,
            at=rt.clock(),
        )
    )
    return iid
