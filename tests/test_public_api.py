from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import promptstate as ps

# the names DESIGN.md promises users
DESIGN_NAMES = {
    "Session",
    "Prompt",
    "system",
    "user",
    "assistant",
    "RunResult",
    "PromptStateError",
    "widgets",
}


def test_public_all_is_sorted_complete_and_exact() -> None:
    assert ps.__all__ == sorted(ps.__all__)
    assert set(ps.__all__) >= DESIGN_NAMES
    eager = {
        n
        for n, v in vars(ps).items()
        if not n.startswith("_")
        and not inspect.ismodule(v)
        and n not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    # imported on first use: the widgets, providers, the evaluation API, the Postgres push
    lazy = (ps._LAZY | set(ps._LAZY_NAMES)) & set(ps.__all__)
    assert {"widgets", "providers", "scorers", "Dataset", "push_run_log"} <= lazy
    assert eager | lazy | {"__version__"} == set(ps.__all__)
    for name in sorted(lazy):
        assert getattr(ps, name) is not None
    namespace: dict[str, object] = {}
    exec("from promptstate import *", namespace)
    assert set(ps.__all__) <= set(namespace)


def test_import_leaves_evals_postgres_and_widgets_for_first_use() -> None:
    # a fresh interpreter: what `import promptstate` loads, and that first use works
    code = (
        "import sys, promptstate as ps\n"
        "heavy = [m for m in sys.modules if m.startswith(('promptstate.evals', "
        "'promptstate.runlog.postgres.log', 'promptstate.widgets', 'psycopg', 'anywidget'))]\n"
        "assert heavy == [], heavy\n"
        "listed = dir(ps)\n"  # tab completion sees every public name before first use
        "assert set(ps.__all__) <= set(listed), set(ps.__all__) - set(listed)\n"
        "assert not [m for m in sys.modules if m.startswith('promptstate.evals')]\n"
        "ds = ps.Dataset([{'q': 'x', 'expected': 'x'}], name='d')\n"
        "assert ps.scorers.contains is not None and callable(ps.compare)\n"
        "from promptstate import Eval, push_run_log\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _defined_here(mod: object) -> set[str]:
    names = set()
    for n, v in vars(mod).items():
        if n.startswith("_") or inspect.ismodule(v):
            continue
        home = getattr(v, "__module__", None)
        if (inspect.isclass(v) or inspect.isfunction(v)) and home == mod.__name__:  # type: ignore[attr-defined]
            names.add(n)
    return names


def test_every_module_exports_exactly_the_classes_and_functions_it_defines() -> None:
    for info in pkgutil.walk_packages(ps.__path__, "promptstate."):
        if info.name.endswith(".__main__"):
            continue  # running it is the point: `python -m promptstate.cli`
        mod = importlib.import_module(info.name)
        declared = set(getattr(mod, "__all__", ()))
        assert hasattr(mod, "__all__"), f"{info.name} lacks __all__"
        missing = [n for n in declared if not hasattr(mod, n)]
        assert not missing, f"{info.name}.__all__ names undefined {missing}"
        undeclared = _defined_here(mod) - declared
        # a module's own public classes and functions are part of its interface
        assert not undeclared, f"{info.name} defines public {sorted(undeclared)} not in __all__"


def test_errors_derive_from_base() -> None:
    for name in ps.__all__:
        obj = getattr(ps, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name.endswith("Error"):
            assert issubclass(obj, ps.PromptStateError), name


def test_import_is_light() -> None:
    code = (
        "import sys, promptstate\n"
        "heavy = [m for m in ('ipywidgets', 'anywidget', 'httpx', 'aiohttp', 'pandas') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
