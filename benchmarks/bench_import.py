"""``import promptstate`` time in a fresh interpreter, and which modules dominate it.

The import is timed inside a fresh subprocess (interpreter start-up excluded), median of
``--runs``. ``python -X importtime`` then attributes the cost: the slowest top-level
packages (cumulative microseconds, each counted where it is first imported) and which
promptstate module pulled each in. Goal: <= 150 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from _common import goal, save_results, section

CODE = "import time; t = time.perf_counter(); import promptstate; print(time.perf_counter() - t)"


def import_seconds(runs: int) -> list[float]:
    """Seconds ``import promptstate`` takes, once per fresh interpreter."""
    out = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
        )
        out.append(float(res.stdout.strip()))
    return out


def importtime() -> list[tuple[int, int, str]]:
    """``-X importtime`` rows: (self us, cumulative us, indented module name)."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import promptstate"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:") :].split("|")
        rows.append((int(self_us), int(cum_us), name.rstrip()))
    return rows


def _depth(raw: str) -> int:
    return (len(raw) - len(raw.lstrip())) // 2


def promptstate_subtree(rows: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The rows imported by ``import promptstate`` (start-up imports of ``site`` dropped)."""
    end = max(i for i, r in enumerate(rows) if r[2].strip() == "promptstate" and _depth(r[2]) == 0)
    start = end
    while start > 0 and _depth(rows[start - 1][2]) > 0:
        start -= 1
    return rows[start : end + 1]


def heavy_packages(rows: list[tuple[int, int, str]], top: int) -> list[tuple[str, int, str]]:
    """Top-level packages by cumulative time, each with the promptstate module importing it.

    ``-X importtime`` prints a module after its children, one indent level deeper per
    nesting: a row's parent is the next row with a smaller depth. A package's cost is
    paid where it first appears.
    """
    found: dict[str, tuple[int, str]] = {}
    for i, (_self, cum, raw) in enumerate(rows):
        name = raw.strip()
        pkg = name.split(".")[0]
        if pkg == "promptstate" or _depth(raw) == 0:
            continue
        importer, depth = "?", _depth(raw)
        for _s, _c, later in rows[i + 1 :]:
            if _depth(later) < depth:
                depth = _depth(later)
                if later.strip().startswith("promptstate"):
                    importer = later.strip()
                    break
        if cum > found.get(pkg, (0, ""))[0]:
            found[pkg] = (cum, importer)
    ranked = sorted(found.items(), key=lambda kv: -kv[1][0])[:top]
    return [(pkg, cum, imp) for pkg, (cum, imp) in ranked]


def main(argv: list[str] | None = None) -> int:
    """Print the median import time and the heaviest dependencies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    section(f"import promptstate, fresh interpreter, {runs} runs")
    times = import_seconds(runs)
    med = statistics.median(times) * 1000
    print("runs: " + ", ".join(f"{t * 1000:.0f}" for t in times) + " ms")
    rows = promptstate_subtree(importtime())
    ps_rows = [r for r in rows if r[2].strip() == "promptstate"]
    total = ps_rows[-1][1] / 1000 if ps_rows else float("nan")
    print(f"-X importtime: promptstate cumulative {total:.0f} ms")
    print("heaviest packages (cumulative ms, first imported by):")
    heavy = heavy_packages(rows, 12)
    for pkg, cum, imp in heavy:
        print(f"  {pkg:22s} {cum / 1000:7.1f} ms   <- {imp}")
    ps_mods = sorted(
        ((c, n.strip()) for s, c, n in rows if n.strip().startswith("promptstate")), reverse=True
    )[:8]
    print("promptstate modules (cumulative ms):")
    for cum, name in ps_mods:
        print(f"  {name:34s} {cum / 1000:7.1f} ms")
    print(f"RESULT import: median {med:.0f} ms (goal <= 150 ms: {goal(med <= 150)})")
    save_results(
        "import",
        {"median_ms": med, "runs_ms": [t * 1000 for t in times], "heavy": heavy},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
