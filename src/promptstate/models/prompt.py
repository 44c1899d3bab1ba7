"""Prompt definitions: messages with templates, declared variables, model and settings."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptstate.errors import InvalidPromptError, PromptFileError, PromptStateError, TemplateError
from promptstate.models.template import parse

__all__ = [
    "ROLES",
    "Message",
    "Prompt",
    "assistant",
    "load_prompt_file",
    "normalize_value",
    "prompt_from_dict",
    "system",
    "user",
]

ROLES = ("system", "user", "assistant")
_MAX_ID = 200


@dataclass(frozen=True)
class Message:
    """One message of a prompt: a role and a template string."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidPromptError(f"message role must be one of {ROLES}, not {self.role!r}")
        if not isinstance(self.content, str):
            raise InvalidPromptError(
                f"message content must be a string, not {type(self.content).__name__}"
            )


def system(content: str) -> Message:
    """A system message template."""
    return Message("system", content)


def user(content: str) -> Message:
    """A user message template."""
    return Message("user", content)


def assistant(content: str) -> Message:
    """An assistant message template (few-shot examples)."""
    return Message("assistant", content)


def normalize_value(name: str, value: object) -> str:
    """Turn a variable value into the text a template receives.

    Strings pass through; numbers and booleans become their JSON text; lists and dicts
    become JSON. Anything else is rejected so no object's ``repr`` leaks into a prompt.
    """
    from promptstate.errors import VariableError

    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise VariableError(
                f"variable {name!r}: not valid Unicode text (a lone surrogate?)"
            ) from None
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return json.dumps(value)
    if isinstance(value, list | dict | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise VariableError(
                f"variable {name!r}: value is not JSON-serializable: {exc}"
            ) from None
    raise VariableError(
        f"variable {name!r}: values must be str, int, float, bool, list or dict, "
        f"not {type(value).__name__}"
    )


@dataclass(frozen=True)
class Prompt:
    """A prompt template.

    Parameters
    ----------
    id : str
        Unique name used by ``session.start(id)``.
    messages : sequence of Message
        Role + template pairs; templates use ``{{ name }}``.
    variables : mapping, optional
        Declared variables and their defaults (``""`` is a value; ``None`` means no default).
    model : str
        ``"<provider>:<model>"`` or ``"echo"`` (offline, the default).
    settings : mapping, optional
        Passed to the provider (temperature, max_tokens, stop, ...).
    version : str, optional
        A label; by default a hash of the content, so an edit gives a new version.
    description : str
        Free text.
    """

    id: str
    messages: Sequence[Message]
    variables: Mapping[str, str | None] = field(default_factory=dict)
    model: str = "echo"
    settings: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip() or len(self.id) > _MAX_ID:
            raise InvalidPromptError(f"prompt id must be a non-empty string, got {self.id!r}")
        if isinstance(self.messages, str | bytes) or not isinstance(self.messages, Iterable):
            raise InvalidPromptError(f"prompt {self.id!r}: messages must be a list of messages")
        msgs = tuple(self.messages)
        if not msgs:
            raise InvalidPromptError(f"prompt {self.id!r}: needs at least one message")
        for m in msgs:
            if not isinstance(m, Message):
                raise InvalidPromptError(
                    f"prompt {self.id!r}: messages must be ps.system/ps.user/ps.assistant, "
                    f"got {type(m).__name__}"
                )
            try:
                parse(m.content)
            except TemplateError as exc:
                raise TemplateError(f"prompt {self.id!r}, {m.role} message: {exc}") from None
        if not isinstance(self.variables, Mapping):
            raise InvalidPromptError(f"prompt {self.id!r}: variables must be a mapping")
        defaults: dict[str, str | None] = {}
        for k, v in self.variables.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise InvalidPromptError(f"prompt {self.id!r}: bad variable name {k!r}")
            defaults[k] = None if v is None else normalize_value(k, v)
        if not isinstance(self.model, str) or not self.model:
            raise InvalidPromptError(f"prompt {self.id!r}: model must be a non-empty string")
        if not isinstance(self.settings, Mapping):
            raise InvalidPromptError(f"prompt {self.id!r}: settings must be a mapping")
        try:
            settings = json.loads(json.dumps(dict(self.settings), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidPromptError(
                f"prompt {self.id!r}: settings must be JSON-serializable: {exc}"
            ) from None
        object.__setattr__(self, "messages", msgs)
        object.__setattr__(self, "variables", defaults)
        object.__setattr__(self, "settings", settings)
        if not self.version:
            object.__setattr__(self, "version", self.content_hash())

    @property
    def used_variables(self) -> frozenset[str]:
        """Every variable name the messages' templates use."""
        names: set[str] = set()
        for m in self.messages:
            names |= parse(m.content).names
        return frozenset(names)

    def content_hash(self) -> str:
        """Short sha256 of everything that changes what is sent."""
        body = self.to_dict()
        body.pop("version", None)
        body.pop("description", None)
        raw = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(raw).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the format of prompt files and of action payloads)."""
        return {
            "id": self.id,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "variables": dict(self.variables),
            "model": self.model,
            "settings": dict(self.settings),
            "version": self.version,
            "description": self.description,
        }


def prompt_from_dict(data: object, where: str = "prompt") -> Prompt:
    """Build a Prompt from a dict (files, DB rows, payloads); errors say what is wrong."""
    if not isinstance(data, Mapping):
        raise InvalidPromptError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - {
        "id",
        "messages",
        "variables",
        "model",
        "settings",
        "version",
        "description",
    }
    if unknown:
        raise InvalidPromptError(
            f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}"
        )
    if "id" not in data:
        raise InvalidPromptError(f"{where}: missing field 'id'")
    if "messages" not in data:
        raise InvalidPromptError(f"{where}: missing field 'messages'")
    raw_msgs = data["messages"]
    if not isinstance(raw_msgs, Sequence) or isinstance(raw_msgs, str | bytes):
        raise InvalidPromptError(f"{where}: 'messages' must be a list")
    msgs: list[Message] = []
    for i, m in enumerate(raw_msgs):
        if not isinstance(m, Mapping) or set(m) != {"role", "content"}:
            raise InvalidPromptError(
                f"{where}: messages[{i}] must be a mapping with exactly 'role' and 'content'"
            )
        msgs.append(Message(m["role"], m["content"]))
    variables = data.get("variables") or {}
    settings = data.get("settings") or {}
    for key, val, typ in (
        ("model", data.get("model", "echo"), str),
        ("version", data.get("version", ""), str),
        ("description", data.get("description", ""), str),
    ):
        if not isinstance(val, typ):
            raise InvalidPromptError(f"{where}: {key!r} must be a string")
    return Prompt(
        id=data["id"],
        messages=tuple(msgs),
        variables=variables,
        model=data.get("model", "echo"),
        settings=settings,
        version=data.get("version", "") or "",
        description=data.get("description", "") or "",
    )


# a prompt file is small; these bound what a hostile one can cost before validation
MAX_PROMPT_FILE_BYTES = 4 * 1024 * 1024
MAX_YAML_ALIASES = 100


def _load_yaml(text: str) -> Any:
    """Parse YAML (safe loader, aliases capped); a syntax error is a ``ValueError``."""
    import yaml  # only here: a JSON prompt file (and ``import promptstate``) never pays for it

    class _Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                _Loader.aliases += 1
                if _Loader.aliases > MAX_YAML_ALIASES:
                    raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def load_prompt_file(path: Path) -> list[Prompt]:
    """Read one YAML or JSON prompt file: a prompt mapping, a list, or ``{prompts: [...]}``."""
    try:
        if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
            raise PromptFileError(str(path), f"larger than {MAX_PROMPT_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(str(path), f"cannot read: {exc}") from None
    try:
        is_json = path.suffix.lower() == ".json"
        data = json.loads(text) if is_json else _load_yaml(text)
    except (ValueError, RecursionError) as exc:
        raise PromptFileError(str(path), f"not valid {path.suffix[1:].upper()}: {exc}") from None
    if isinstance(data, Mapping) and "prompts" in data and "messages" not in data:
        data = data["prompts"]
    items = data if isinstance(data, list) else [data]
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"prompt #{i + 1}" if isinstance(data, list) else "prompt"
        try:
            p = prompt_from_dict(item, where)
        except PromptStateError as exc:
            raise PromptFileError(str(path), str(exc)) from None
        except RecursionError:
            raise PromptFileError(str(path), f"{where}: structure nested too deeply") from None
        if p.id in seen:
            raise PromptFileError(str(path), f"duplicate prompt id {p.id!r}")
        seen.add(p.id)
        prompts.append(p)
    return prompts
