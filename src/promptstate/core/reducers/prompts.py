"""The ``prompts`` slice: the session's prompt cache."""

from __future__ import annotations

from promptstate.core.actions import (
    PromptFetchFulfilled,
    PromptFetchPending,
    PromptFetchRejected,
    PromptInvalidated,
)
from promptstate.core.reducers._registry import on, replace
from promptstate.core.state import PromptEntry, State, prompt_key
from promptstate.models.prompt import prompt_from_dict

__all__: list[str] = []


@on(PromptFetchPending)
def _pending(state: State, a: PromptFetchPending) -> State:
    return state  # recorded for the devtools timeline; the cache changes on fulfilled


@on(PromptFetchRejected)
def _rejected(state: State, a: PromptFetchRejected) -> State:
    return state


@on(PromptFetchFulfilled)
def _fulfilled(state: State, a: PromptFetchFulfilled) -> State:
    prompt = prompt_from_dict(a.prompt)
    entry = PromptEntry(prompt=prompt, source=a.source, fetched_at=a.at)
    # the bare id is the cache slot start() checks; id@version is what instances read.
    # Restoring an old run fetches its version without making it the latest.
    prompts = state.prompts.set(prompt_key(prompt.id, prompt.version), entry)
    if a.latest:
        prompts = prompts.set(prompt.id, entry)
    return replace(state, prompts=prompts)


@on(PromptInvalidated)
def _invalidated(state: State, a: PromptInvalidated) -> State:
    if a.prompt_id not in state.prompts:
        return state
    return replace(state, prompts=state.prompts.delete(a.prompt_id))
