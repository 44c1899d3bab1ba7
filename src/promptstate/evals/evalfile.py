"""``promptstate eval FILE.yaml``: an eval file, its thresholds, JUnit XML and JSON reports.

An eval file (paths relative to the file)::

    name: greetings
    prompts: prompts/hello.yaml          # a prompt file or directory, or a list of them
    prompt_ids: [hello]                  # optional: which of the loaded prompts
    dataset: eval_data.csv               # or {file: ..., variables: [...], metadata: [...]}
    models: [echo]
    repeat: 1
    scorers:
      - contains: {text: "Hello"}
      - equals                           # a name alone: default parameters
    thresholds:
      min_pass_rate: 0.9                 # every scorer
      scorers: {equals: {min_pass_rate: 1.0}, similarity: {min_mean: 0.5}}
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import yaml

from promptstate.errors import EvalFileError, PromptStateError
from promptstate.evals.dataset import Dataset
from promptstate.evals.results import EvalSummary, SummaryRow
from promptstate.evals.scorers import BUILTINS
from promptstate.evals.scoring import Scorer

__all__ = [
    "EvalSpec",
    "check_thresholds",
    "junit_xml",
    "load_eval_file",
    "report_json",
    "run_eval_command",
]

_KEYS = {
    "name", "prompts", "prompt_ids", "dataset", "models", "repeat", "concurrency",
    "cache", "scorers", "thresholds", "settings",
}  # fmt: skip
_LIMITS = ("min_pass_rate", "min_mean", "max_errors")


@dataclass
class EvalSpec:
    """A validated eval file."""

    path: str
    name: str
    prompt_paths: list[str]
    prompt_ids: list[str] | None
    dataset: Dataset
    scorers: list[Scorer]
    models: list[str] | None
    repeat: int
    concurrency: int
    cache: bool | None
    thresholds: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def _fail(path: str, fld: str, reason: str) -> EvalFileError:
    return EvalFileError(path, fld, reason)


def _strs(path: str, fld: str, value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
        raise _fail(path, fld, "expected a string or a non-empty list of strings")
    return items


def _int(path: str, fld: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(path, fld, f"expected a whole number >= 1, got {value!r}")
    return value


def _scorer(path: str, i: int, item: Any) -> Scorer:
    fld = f"scorers[{i}]"
    name: Any
    params: Any
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
        params = {} if params is None else params
    else:
        raise _fail(path, fld, "expected a scorer name or {name: {params}}")
    if name not in BUILTINS:
        import difflib

        close = difflib.get_close_matches(str(name), BUILTINS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _fail(path, fld, f"unknown scorer {name!r}{hint} (known: {', '.join(BUILTINS)})")
    if not isinstance(params, dict):
        raise _fail(path, fld, f"parameters of {name!r} must be a mapping")
    try:
        made = BUILTINS[name](**params)
    except TypeError as exc:
        raise _fail(path, fld, f"bad parameters for {name!r}: {exc}") from None
    except PromptStateError as exc:
        raise _fail(path, fld, str(exc)) from None
    assert isinstance(made, Scorer)
    return made


def _thresholds(path: str, value: Any, scorer_names: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, "thresholds", "expected a mapping")
    out: dict[str, Any] = {"scorers": {}}
    for k, v in value.items():
        if k == "scorers":
            if not isinstance(v, dict):
                raise _fail(path, "thresholds.scorers", "expected {scorer: {limit: value}}")
            for sname, limits in v.items():
                if sname not in scorer_names:
                    raise _fail(path, f"thresholds.scorers.{sname}", "no scorer of that name")
                if not isinstance(limits, dict):
                    raise _fail(path, f"thresholds.scorers.{sname}", "expected a mapping")
                out["scorers"][sname] = {
                    lk: _limit(path, f"thresholds.scorers.{sname}.{lk}", lk, lv)
                    for lk, lv in limits.items()
                }
        else:
            out[k] = _limit(path, f"thresholds.{k}", k, v)
    return out


def _limit(path: str, fld: str, key: str, value: Any) -> float:
    if key not in _LIMITS:
        raise _fail(path, fld, f"unknown threshold (known: {', '.join(_LIMITS)})")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, fld, f"expected a number, got {value!r}")
    return float(value)


def load_eval_file(path: str) -> EvalSpec:
    """Read and validate an eval file (raises :class:`EvalFileError` naming the field)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise _fail(path, "", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise _fail(path, "", f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise _fail(path, "", "an eval file must be a mapping")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown field (known: {', '.join(sorted(_KEYS))})")
    base = os.path.dirname(os.path.abspath(path))
    for req in ("prompts", "dataset", "scorers"):
        if data.get(req) in (None, "", []):
            raise _fail(path, req, "required")
    prompt_paths = [os.path.join(base, p) for p in _strs(path, "prompts", data["prompts"])]
    for p in prompt_paths:
        if not os.path.exists(p):
            raise _fail(path, "prompts", f"no such file or directory: {p}")
    ds_spec = data["dataset"]
    ds_kwargs: dict[str, Any] = {}
    if isinstance(ds_spec, dict):
        ds_file = ds_spec.get("file")
        for k in ("variables", "metadata", "expected", "name"):
            if k in ds_spec:
                ds_kwargs[k] = ds_spec[k]
        extra = set(ds_spec) - {"file", "variables", "metadata", "expected", "name"}
        if extra:
            raise _fail(path, f"dataset.{sorted(extra)[0]}", "unknown field")
    else:
        ds_file = ds_spec
    if not isinstance(ds_file, str):
        raise _fail(path, "dataset", "expected a file path (or {file: path, ...})")
    ds_path = os.path.join(base, ds_file)
    if not os.path.isfile(ds_path):
        raise _fail(path, "dataset", f"no such file: {ds_path}")
    try:
        dataset = Dataset.from_file(ds_path, **ds_kwargs)
    except PromptStateError as exc:
        raise _fail(path, "dataset", str(exc)) from None
    raw_scorers = data["scorers"]
    if not isinstance(raw_scorers, list):
        raise _fail(path, "scorers", "expected a list")
    scorers = [_scorer(path, i, s) for i, s in enumerate(raw_scorers)]
    cache = data.get("cache")
    if cache is not None and not isinstance(cache, bool):
        raise _fail(path, "cache", "expected true or false")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise _fail(path, "settings", "expected a mapping")
    return EvalSpec(
        path=path,
        name=str(data.get("name") or os.path.splitext(os.path.basename(path))[0]),
        prompt_paths=prompt_paths,
        prompt_ids=None
        if data.get("prompt_ids") is None
        else _strs(path, "prompt_ids", data["prompt_ids"]),
        dataset=dataset,
        scorers=scorers,
        models=None if data.get("models") is None else _strs(path, "models", data["models"]),
        repeat=_int(path, "repeat", data.get("repeat"), 1),
        concurrency=_int(path, "concurrency", data.get("concurrency"), 8),
        cache=cache,
        thresholds=_thresholds(path, data.get("thresholds"), [s.name for s in scorers]),
        settings=settings,
    )


def check_thresholds(
    summary: EvalSummary, thresholds: dict[str, Any]
) -> list[tuple[SummaryRow, str]]:
    """``(row, why)`` for every summary row that misses a threshold."""
    failures = []
    for r in summary:
        limits = {k: v for k, v in thresholds.items() if k in _LIMITS}
        limits.update(thresholds.get("scorers", {}).get(r.scorer, {}))
        lo = limits.get("min_pass_rate")
        if lo is not None and not (r.pass_rate >= lo):  # NaN (no pass/fail) fails too
            failures.append((r, f"pass rate {r.pass_rate:.3f} < min_pass_rate {lo:g}"))
        lo = limits.get("min_mean")
        if lo is not None and not (r.mean >= lo):
            failures.append((r, f"mean {r.mean:.3f} < min_mean {lo:g}"))
        hi = limits.get("max_errors")
        if hi is not None and r.errors > hi:
            failures.append((r, f"{r.errors} scorer errors > max_errors {hi:g}"))
    return failures


def junit_xml(name: str, summary: EvalSummary, failures: list[tuple[SummaryRow, str]]) -> bytes:
    """A JUnit XML report: one test case per prompt version x model x scorer."""
    failed: dict[int, list[str]] = {}
    for r, why in failures:
        failed.setdefault(id(r), []).append(why)
    suite = ET.Element(
        "testsuite",
        name=f"promptstate eval {name}",
        tests=str(len(summary)),
        failures=str(len(failed)),
        errors="0",
    )
    for r in summary:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{r.prompt_id}@{r.prompt_version}.{r.model}",
            name=r.scorer,
        )
        props = ET.SubElement(case, "properties")
        for k in ("n", "passed", "pass_rate", "mean", "errors"):
            ET.SubElement(props, "property", name=k, value=str(getattr(r, k)))
        if id(r) in failed:
            msg = "; ".join(failed[id(r)])
            ET.SubElement(case, "failure", message=msg, type="threshold").text = msg
    return bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True))


def report_json(
    spec: EvalSpec, eval_id: str, summary: EvalSummary, failures: list[tuple[SummaryRow, str]]
) -> str:
    """The JSON report: the summary rows, the threshold failures, ok."""
    return json.dumps(
        {
            "name": spec.name,
            "eval_id": eval_id,
            "dataset": {"name": spec.dataset.name, "version": spec.dataset.version},
            "summary": summary.records(),
            "failures": [
                {"prompt_id": r.prompt_id, "model": r.model, "scorer": r.scorer, "reason": why}
                for r, why in failures
            ],
            "ok": not failures,
        },
        indent=2,
    )


async def run_eval_command(
    session: Any, spec: EvalSpec, junit: str | None, json_out: str | None
) -> int:
    """Run ``spec`` on ``session``, print the summary, write the reports; the exit code.

    0 every threshold holds, 1 one fails.
    """
    import sys

    loaded = []
    for p in spec.prompt_paths:
        loaded += session.prompts.load(p)
    ids = spec.prompt_ids or [p.id for p in loaded]
    known = {p.id for p in loaded}
    missing = [i for i in ids if i not in known]
    if missing:
        raise EvalFileError(
            spec.path, "prompt_ids", f"no prompt {missing[0]!r} in the prompt files"
        )
    ev = session.evaluate(
        ids,
        spec.dataset,
        spec.scorers,
        models=spec.models,
        repeat=spec.repeat,
        concurrency=spec.concurrency,
        cache=spec.cache,
        name=spec.name,
        settings=spec.settings or None,
    )
    await ev
    summary = ev.summary()
    failures = check_thresholds(summary, spec.thresholds)
    print(
        f"eval {spec.name} ({ev.eval_id}): {len(ev.cells)} runs on "
        f"{spec.dataset.name}@{spec.dataset.version}"
    )
    print(summary.table())
    for r, why in failures:
        print(
            f"FAIL {r.prompt_id}@{r.prompt_version[:8]} {r.model} {r.scorer}: {why}",
            file=sys.stderr,
        )
    if junit:
        with open(junit, "wb") as fh:
            fh.write(junit_xml(spec.name, summary, failures))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as fh:
            fh.write(report_json(spec, ev.eval_id, summary, failures))
    print("ok: every threshold holds" if not failures else f"{len(failures)} threshold(s) failed")
    return 1 if failures else 0
