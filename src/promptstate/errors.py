"""Typed errors raised by promptstate.

Every error derives from :class:`PromptStateError`, so ``except ps.PromptStateError``
catches anything the library raises on purpose::

    PromptStateError
    ├── UnknownPromptError          start()/fetch of an id no source knows
    ├── UnknownInstanceError        an instance id that is not in the store
    ├── UnknownRunError             a run id that is not in the run log
    ├── TemplateError               a malformed ``{{ ... }}`` template
    ├── PromptFileError             a prompt file that cannot be read or validated
    ├── InvalidPromptError          a Prompt built with wrong types or values
    ├── VariableError               a bad variable name or value
    │   └── MissingVariablesError   sending while variables have no value
    ├── RunLogError                 the DuckDB run log cannot be opened or written
    │   └── RunLogLockedError       another process holds the DuckDB file lock
    ├── ReadOnlyQueryError          a statement that would write, sent to a read-only path
    ├── StateImportError            a devtools export that is malformed or tampered
    ├── DatasetError                a dataset that cannot be read, or a column in the wrong role
    ├── ScorerError                 a scorer built with wrong arguments (an unknown name included)
    ├── EvalFileError               an eval YAML file that is malformed; names the file and field
    ├── UnknownEvalError            an eval id that is not in the run log
    ├── InstanceBusyError           send() while the instance already has a run in flight
    ├── RunFailedError              raise_for_status() of a failed run read back from the log
    ├── UnknownProviderError        a model string whose provider is not configured
    ├── ProviderConfigError         bad provider settings, Timeouts/RetryPolicy or request
    └── ProviderError               the LLM API failed (after retries)
        ├── ProviderHTTPError
        ├── ProviderTimeoutError
        ├── ProviderConnectionError
        └── ProviderStreamError

Warnings: :class:`UnusedVariableWarning` (a variable given to an instance that its prompt
never uses).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DatasetError",
    "EvalFileError",
    "InstanceBusyError",
    "InvalidPromptError",
    "MissingVariablesError",
    "PromptFileError",
    "PromptStateError",
    "ProviderConfigError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "ReadOnlyQueryError",
    "RunFailedError",
    "RunLogError",
    "RunLogLockedError",
    "ScorerError",
    "StateImportError",
    "TemplateError",
    "UnknownEvalError",
    "UnknownInstanceError",
    "UnknownPromptError",
    "UnknownProviderError",
    "UnknownRunError",
    "UnusedVariableWarning",
    "VariableError",
]


class PromptStateError(Exception):
    """Base class of every error promptstate raises on purpose."""


class UnknownPromptError(PromptStateError, KeyError):
    """No registered source knows this prompt id."""

    def __init__(self, prompt_id: str, known: Iterable[str] = ()) -> None:
        self.prompt_id = prompt_id
        known_list = sorted(known)
        hint = f"; known prompts: {', '.join(known_list)}" if known_list else ""
        super().__init__(f"unknown prompt {prompt_id!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the whole message again
        return str(self.args[0])


class UnknownInstanceError(PromptStateError, KeyError):
    """The instance id is not in the store (never started, or from another session)."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"unknown instance {instance_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownRunError(PromptStateError, KeyError):
    """The run id is not in the run log."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"unknown run {run_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class TemplateError(PromptStateError, ValueError):
    """A template could not be parsed; ``position`` is the offending offset."""

    def __init__(self, message: str, template: str = "", position: int | None = None) -> None:
        self.template = template
        self.position = position
        if position is not None:
            line = template.count("\n", 0, position) + 1
            col = position - (template.rfind("\n", 0, position) + 1) + 1
            message = f"{message} (line {line}, column {col})"
        super().__init__(message)


class PromptFileError(PromptStateError, ValueError):
    """A prompt file is unreadable or invalid; the message names the path and reason."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class InvalidPromptError(PromptStateError, ValueError, TypeError):
    """A :class:`~promptstate.Prompt` was built from wrong types or values."""


class VariableError(PromptStateError, ValueError):
    """A variable name or value is not acceptable."""


class MissingVariablesError(VariableError):
    """Sending needs values for these variables; ``missing`` names every one."""

    def __init__(self, missing: Iterable[str], prompt_id: str = "") -> None:
        self.missing = tuple(sorted(missing))
        where = f" of prompt {prompt_id!r}" if prompt_id else ""
        super().__init__(
            f"missing value for variable(s){where}: {', '.join(self.missing)}; "
            "set them with inst.set_variable(name, value) or give them to session.start()"
        )


class RunLogError(PromptStateError):
    """The DuckDB run log could not be opened, migrated or written."""


class RunLogLockedError(RunLogError):
    """Another process holds the DuckDB file's write lock and retries ran out."""


class ReadOnlyQueryError(PromptStateError, ValueError):
    """A statement that writes (or reads files) was sent to a read-only query path."""


class StateImportError(PromptStateError, ValueError):
    """A devtools export is malformed, of an unknown version, or tampered with."""


class InstanceBusyError(PromptStateError, RuntimeError):
    """The instance already has a run in flight; await it or cancel it first."""


class RunFailedError(PromptStateError):
    """A run read back from the log ended without success (its error class is unknown)."""


class UnknownProviderError(PromptStateError, KeyError):
    """A model string names a provider that is not configured in this session."""

    def __init__(self, provider: str, known: Iterable[str] = ()) -> None:
        self.provider = provider
        super().__init__(
            f"unknown provider {provider!r} in model string; configured: "
            f"{', '.join(sorted(known)) or '(none)'}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ProviderConfigError(PromptStateError, ValueError):
    """A provider, its ``Timeouts``/``RetryPolicy``, or a request is not acceptable.

    Raised before anything is sent: an API key or header value that cannot go into an
    HTTP header, a timeout or delay that is not a positive finite number, an empty model
    name, settings that are not finite JSON (``NaN``, objects JSON cannot encode).
    """


class ProviderError(PromptStateError):
    """The LLM API call failed (after any retries).

    Attributes
    ----------
    status_code : int or None
        HTTP status of the last attempt, when there was one.
    attempts : int
        How many attempts were made.
    """

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 1) -> None:
        self.status_code = status_code
        self.attempts = attempts
        super().__init__(message)


class ProviderHTTPError(ProviderError):
    """A non-retryable HTTP status, or retries exhausted."""


class ProviderTimeoutError(ProviderError):
    """Connecting or reading timed out (a stalled stream included)."""


class ProviderConnectionError(ProviderError):
    """The connection could not be made or was lost before any reply."""


class ProviderStreamError(ProviderError):
    """The stream broke mid-way (dropped connection, malformed event)."""


class UnusedVariableWarning(UserWarning):
    """A variable was given explicitly to an instance whose prompt never uses it."""


# -- evaluations ------------------------------------------------------------------------


class DatasetError(PromptStateError, ValueError):
    """A dataset cannot be read, or a column is unknown / in the wrong role."""


class ScorerError(PromptStateError, ValueError):
    """A scorer was built with wrong arguments, or an unknown scorer name was given."""


class EvalFileError(PromptStateError, ValueError):
    """An eval file is unreadable or invalid; the message names the file and the field."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        self.path = path
        self.field = field
        self.reason = reason
        where = f" (field {field!r})" if field else ""
        super().__init__(f"{path}{where}: {reason}")


class UnknownEvalError(PromptStateError, KeyError):
    """The eval id is not in the run log."""

    def __init__(self, eval_id: str) -> None:
        self.eval_id = eval_id
        super().__init__(f"unknown eval {eval_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])
