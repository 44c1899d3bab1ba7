"""Datasets: rows of variables, an optional ``expected`` value and metadata.

Each row has a stable id, a hash of its content (a repeated row gets ``-2``, ``-3``...
after the hash), and a dataset's version is a hash of its rows and column roles, so
saving the same rows twice is the same version.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptstate.engine.send import check_name
from promptstate.errors import DatasetError, PromptStateError, UnusedVariableWarning
from promptstate.models.prompt import Prompt, normalize_value

__all__ = ["Dataset", "DatasetRow"]


def _hash(obj: Any, n: int = 16) -> str:
    raw = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:n]


def _missing(value: Any) -> bool:
    # pandas gives NaN for an empty cell; JSON gives null
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class DatasetRow:
    """One row: ``variables`` (text, as templates receive them), ``expected``, ``metadata``."""

    row_id: str
    position: int
    variables: dict[str, str]
    expected: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        """The row as stored in ``dataset_rows.data``."""
        return {"variables": self.variables, "expected": self.expected, "metadata": self.metadata}


class Dataset:
    """Rows to evaluate prompts on.

    Parameters
    ----------
    rows : iterable of mappings
        One mapping per row, column name to value.
    name : str
        The dataset's id in the run log (``datasets.dataset_id``).
    variables : sequence of str, optional
        Columns that are prompt variables (default: every column that is neither
        ``expected`` nor metadata). Other columns then become metadata.
    metadata : sequence of str, optional
        Columns kept with the row but never sent.
    expected : str or None
        The column holding the expected output (optional unless named explicitly).

    Raises
    ------
    DatasetError
        A declared column no row has, a variable column that is not an identifier, a
        value that cannot become template text.
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        name: str = "dataset",
        variables: Sequence[str] | None = None,
        metadata: Sequence[str] | None = None,
        expected: str | None = "expected",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(f"a dataset name must be a non-empty string, not {name!r}")
        raw = []
        for i, r in enumerate(rows):
            if not isinstance(r, Mapping):
                raise DatasetError(f"dataset row {i}: expected a mapping, got {type(r).__name__}")
            if not all(isinstance(k, str) for k in r):
                raise DatasetError(f"dataset row {i}: column names must be strings")
            raw.append(r)
        columns = list(dict.fromkeys(k for r in raw for k in r))
        if isinstance(variables, str) or isinstance(metadata, str):
            raise DatasetError("variables= and metadata= take a list of column names")
        for role, names in (("variables", variables), ("metadata", metadata)):
            unknown = [c for c in names or () if c not in columns]
            if unknown:
                raise DatasetError(
                    f"{role}= names column(s) {', '.join(map(repr, unknown))} that no row "
                    f"has (columns: {', '.join(columns) or 'none'})"
                )
        explicit_expected = expected not in (None, "expected")
        if explicit_expected and expected not in columns:
            raise DatasetError(f"expected={expected!r}: no row has that column")
        exp_col = expected if expected in columns else None
        meta = list(metadata or ())
        if variables is None:
            var_cols = [c for c in columns if c != exp_col and c not in meta]
        else:
            var_cols = list(variables)
            meta += [c for c in columns if c not in var_cols and c != exp_col and c not in meta]
        for c in var_cols:
            try:
                check_name(c)
            except PromptStateError as exc:
                raise DatasetError(
                    f"column {c!r} cannot be a variable ({exc}); declare it with metadata="
                ) from None
        self.name = name
        self.columns = columns
        self.variable_names = var_cols
        self.metadata_names = meta
        self.expected_column = exp_col
        self.rows: tuple[DatasetRow, ...] = self._build(raw)
        self.version = _hash(
            {"roles": [var_cols, meta, exp_col], "rows": [r.row_id for r in self.rows]}
        )

    def _build(self, raw: list[Mapping[str, Any]]) -> tuple[DatasetRow, ...]:
        seen: dict[str, int] = {}
        out = []
        for i, r in enumerate(raw):
            values: dict[str, str] = {}
            for c in self.variable_names:
                v = r.get(c)
                if _missing(v):
                    continue  # the prompt's default (or a scoped value) applies
                try:
                    values[c] = normalize_value(c, v)
                except PromptStateError as exc:
                    raise DatasetError(f"dataset row {i}, column {c!r}: {exc}") from None
            exp = r.get(self.expected_column) if self.expected_column else None
            exp = None if _missing(exp) else exp
            meta = {c: r[c] for c in self.metadata_names if c in r and not _missing(r[c])}
            content = {"variables": values, "expected": exp, "metadata": meta}
            h = _hash(content)
            seen[h] = seen.get(h, 0) + 1
            rid = h if seen[h] == 1 else f"{h}-{seen[h]}"
            out.append(DatasetRow(rid, i, values, exp, meta))
        return tuple(out)

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def from_records(cls, rows: Iterable[Mapping[str, Any]], **kwargs: Any) -> Dataset:
        """A dataset from a list of dicts (same as the constructor)."""
        return cls(rows, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Dataset:
        """Read a ``.csv`` (header = columns), ``.jsonl`` or ``.json`` (a list) file.

        The name defaults to the file's stem.
        """
        p = os.fspath(path)
        kwargs.setdefault("name", os.path.splitext(os.path.basename(p))[0])
        try:
            with open(p, encoding="utf-8-sig", newline="") as fh:
                if p.lower().endswith(".csv"):
                    rows: list[Any] = [dict(r) for r in csv.DictReader(fh)]
                elif p.lower().endswith(".json"):
                    rows = json.load(fh)
                    if not isinstance(rows, list):
                        raise DatasetError(f"{p}: a .json dataset must be a list of objects")
                else:
                    rows = [json.loads(line) for line in fh if line.strip()]
        except OSError as exc:
            raise DatasetError(f"cannot read dataset {p}: {exc.strerror}") from None
        except (ValueError, csv.Error) as exc:
            raise DatasetError(f"{p}: not a valid dataset file: {exc}") from None
        try:
            return cls(rows, **kwargs)
        except DatasetError as exc:
            raise DatasetError(f"{p}: {exc}") from None

    @classmethod
    def from_df(cls, df: Any, **kwargs: Any) -> Dataset:
        """A dataset from a pandas or polars DataFrame (NaN / null cells are left unset)."""
        if hasattr(df, "to_dicts"):  # polars
            return cls(df.to_dicts(), **kwargs)
        if hasattr(df, "to_dict"):  # pandas
            return cls(df.to_dict("records"), **kwargs)
        raise DatasetError(f"from_df() takes a pandas or polars DataFrame, not {type(df).__name__}")

    @classmethod
    def from_sql(cls, source: Any, query: str, **kwargs: Any) -> Dataset:
        """A dataset from a read-only SQL query over the run log.

        ``source`` is a session (``session.runs.sql`` is used) or anything with ``sql``.
        """
        runner = getattr(source, "runs", source)
        rel = runner.sql(query, read_only=True)
        if rel is None:
            raise DatasetError(f"the query returned no result: {query!r}")
        cols = list(rel.columns)
        return cls([dict(zip(cols, r, strict=True)) for r in rel.fetchall()], **kwargs)

    # -- checks, views -----------------------------------------------------------------------------

    def check_prompt(self, prompt: Prompt) -> None:
        """Check the variable columns against a prompt.

        A column that looks like a typo of a variable the prompt needs and no column
        gives raises :class:`DatasetError`; any other unused column warns
        (:class:`~promptstate.UnusedVariableWarning`), naming it.
        """
        used = prompt.used_variables
        not_given = sorted(used - set(self.variable_names))
        for col in self.variable_names:
            if col in used:
                continue
            close = difflib.get_close_matches(col, not_given, n=1, cutoff=0.6)
            if close:
                raise DatasetError(
                    f"column {col!r} of dataset {self.name!r} is not a variable of prompt "
                    f"{prompt.id!r}; did you mean {close[0]!r}? (declare it with metadata= "
                    "if it is not meant as a variable)"
                )
            warnings.warn(
                f"column {col!r} of dataset {self.name!r} is not used by prompt {prompt.id!r}"
                " (declare it with metadata= to silence this)",
                UnusedVariableWarning,
                stacklevel=3,
            )

    def meta(self, created_at: Any) -> dict[str, Any]:
        """The ``datasets`` row."""
        return {
            "dataset_id": self.name,
            "version": self.version,
            "name": self.name,
            "columns": self.columns,
            "variables": self.variable_names,
            "metadata": self.metadata_names,
            "expected_column": self.expected_column,
            "created_at": created_at,
        }

    def row(self, row_id: str) -> DatasetRow:
        """The row with this id (KeyError when absent)."""
        for r in self.rows:
            if r.row_id == row_id:
                return r
        raise KeyError(row_id)

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per row: ``row_id``, the variables, ``expected``, the metadata."""
        return [
            {"row_id": r.row_id, **r.variables, "expected": r.expected, **r.metadata}
            for r in self.rows
        ]

    def df(self) -> Any:
        """The rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.records())

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[DatasetRow]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, rows={len(self.rows)}, variables={self.variable_names}, "
            f"expected={self.expected_column!r}, version={self.version!r})"
        )
