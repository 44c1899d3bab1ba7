"""The prompt registry: registered objects, prompt files, the DB ``prompts`` table.

It is the engine's prompt source: a prompt is fetched from here once per session and
cached in the store; ``fetch_count`` counts real fetches per prompt id.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from promptstate.core.actions import PromptInvalidated
from promptstate.engine.ports import Runtime
from promptstate.engine.prompts import fetch_prompt
from promptstate.errors import InvalidPromptError, PromptFileError, UnknownPromptError
from promptstate.models.prompt import Prompt, load_prompt_file, prompt_from_dict
from promptstate.runlog import AnyRunLog

__all__ = ["PromptRegistry"]


class PromptRegistry:
    """Where prompts come from (``session.prompts``)."""

    def __init__(self, runlog: AnyRunLog, runtime: Callable[[], Runtime]) -> None:
        self._runlog = runlog
        self._runtime = runtime
        self._memory: dict[str, Prompt] = {}
        self._files: dict[str, Path] = {}
        self._lock = threading.Lock()
        self.fetch_count: dict[str, int] = {}

    def register(self, prompt: Prompt) -> Prompt:
        """Make ``prompt`` available to ``Session.start``.

        Registering a changed prompt (a new version) under a known id drops the cached
        copy, so the next ``start`` uses the new version; running instances keep theirs.
        """
        if not isinstance(prompt, Prompt):
            raise InvalidPromptError(f"register() takes a ps.Prompt, not {type(prompt).__name__}")
        with self._lock:
            self._memory[prompt.id] = prompt
        store = self._runtime().store
        cached = store.get_state().prompts.get(prompt.id)
        if cached is not None and cached.prompt.version != prompt.version:
            store.dispatch(PromptInvalidated(prompt_id=prompt.id))
        return prompt

    def load(self, path: str | os.PathLike[str]) -> list[Prompt]:
        """Load every ``.yaml``/``.yml``/``.json`` prompt file in a directory, or one file.

        Files are validated now (a bad file raises :class:`PromptFileError` naming it and
        nothing is loaded); the file is read again on every fetch, so ``refresh=True``
        picks up edits.
        """
        p = Path(path)
        if p.is_dir():
            files = sorted(
                f
                for f in p.iterdir()
                if f.suffix.lower() in (".yaml", ".yml", ".json") and f.is_file()
            )
        elif p.is_file():
            files = [p]
        else:
            raise PromptFileError(str(p), "no such file or directory")
        found: dict[str, tuple[Prompt, Path]] = {}
        for f in files:
            for prompt in load_prompt_file(f):
                if prompt.id in found:
                    raise PromptFileError(
                        str(f), f"prompt id {prompt.id!r} also defined in {found[prompt.id][1]}"
                    )
                found[prompt.id] = (prompt, f)
        with self._lock:
            for pid, (_, f) in found.items():
                self._files[pid] = f
                self._memory.pop(pid, None)
        return [pr for pr, _ in found.values()]

    def save(self, prompt: Prompt) -> Prompt:
        """Store ``prompt`` in the run log's ``prompts`` table (and register it)."""
        if not isinstance(prompt, Prompt):
            raise InvalidPromptError(f"save() takes a ps.Prompt, not {type(prompt).__name__}")
        self._runlog.save_prompt(prompt.to_dict(), "db").result()
        return self.register(prompt)

    def ids(self) -> list[str]:
        """Every prompt id any source knows."""
        with self._lock:
            known = set(self._memory) | set(self._files)
        known |= set(self._runlog.prompt_ids())
        return sorted(known)

    def get(self, prompt_id: str, refresh: bool = False) -> Prompt:
        """The prompt as cached in this session (fetched once unless ``refresh``)."""
        return fetch_prompt(self._runtime(), prompt_id, refresh=refresh).prompt

    # -- the engine's PromptSource port ----------------------------------------------------

    def fetch(self, prompt_id: str) -> tuple[Prompt, str]:
        """Fetch from the first source that knows the id (memory, files, then the DB)."""
        if not isinstance(prompt_id, str):
            raise UnknownPromptError(repr(prompt_id))
        with self._lock:
            mem = self._memory.get(prompt_id)
            path = self._files.get(prompt_id)
        if mem is not None:
            result = (mem, "memory")
        elif path is not None:
            match = [p for p in load_prompt_file(path) if p.id == prompt_id]
            if not match:
                raise PromptFileError(str(path), f"prompt {prompt_id!r} is no longer in this file")
            result = (match[0], f"file:{path}")
        else:
            stored = self._runlog.load_prompt(prompt_id)
            if stored is None:
                raise UnknownPromptError(prompt_id, self.ids())
            result = (prompt_from_dict(stored, f"prompt {prompt_id!r} from the DB"), "db")
        with self._lock:
            self.fetch_count[prompt_id] = self.fetch_count.get(prompt_id, 0) + 1
        return result

    def fetch_version(self, prompt_id: str, version: str) -> Prompt | None:
        """One version, from memory if it is the registered one, else from the DB."""
        with self._lock:
            mem = self._memory.get(prompt_id)
        if mem is not None and mem.version == version:
            return mem
        stored = self._runlog.load_prompt(prompt_id, version)
        if stored is None:
            return None
        return prompt_from_dict(stored, f"prompt {prompt_id!r} version {version!r}")

    def __repr__(self) -> str:
        return f"PromptRegistry({self.ids()})"
