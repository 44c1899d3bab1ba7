"""Store: cost of one variable edit as the number of live instances grows (10 .. 10,000).

Measures, per N live instances: ``inst.set_variable`` (the public path: checks, warnings,
dispatch through the devtools recorder, reducer, listeners), a bare
``store.dispatch(VariableSet(...))``, and, to show where the store
is not flat, ``session.start`` (``instances/started``) and ``inst.close``
(``instances/closed``) at that size. Goal: the edit is flat from 10 to 10,000 instances.
No network, no run-log writes (nothing is sent).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

from _common import goal, save_results, section

import promptstate as ps
from promptstate.core.actions import VariableSet


def per_call_us(fn: Callable[[int], None], k: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` microseconds per ``fn(i)`` over ``k`` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(k):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / k)
    return best * 1e6


def measure(n: int, k: int) -> dict[str, float]:
    """All four figures with ``n`` live instances."""
    session = ps.Session()  # in-memory run log: nothing here writes to it
    session.prompts.register(
        ps.Prompt(
            id="p", messages=[ps.user("Hi {{name}}: {{text}}")], variables={"text": "", "name": "x"}
        )
    )
    insts = [session.start("p", {"text": "t"}) for _ in range(n)]
    rng = random.Random(1)
    picks = [insts[rng.randrange(n)] for _ in range(k)]
    ids = [i.id for i in picks]
    dispatch = session.store.dispatch

    set_var = per_call_us(lambda i: picks[i].set_variable("text", f"v{i}"), k)
    raw = per_call_us(
        lambda i: dispatch(VariableSet(instance_id=ids[i], name="text", value=f"r{i}")),
        k,
    )
    # start/close at this size: start m extra instances, then close them again
    m = min(k, 200)
    extra: list[ps.Instance] = []
    t0 = time.perf_counter()
    for _ in range(m):
        extra.append(session.start("p", {"text": "t"}))
    start_us = (time.perf_counter() - t0) / m * 1e6
    t0 = time.perf_counter()
    for inst in extra:
        inst.close()
    close_us = (time.perf_counter() - t0) / m * 1e6
    session.close()
    return {"set_variable": set_var, "dispatch": raw, "start": start_us, "close": close_us}


def main(argv: list[str] | None = None) -> int:
    """Print the table and the 10k/10 flatness ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=2000, help="edits timed per size")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    sizes = [10, 100, 1000, 10000]
    k = 500 if args.quick else args.k
    section("store: microseconds per call with N live instances")
    print(f"{'N':>6s} {'set_variable':>13s} {'dispatch':>9s} {'start':>9s} {'close':>9s}")
    rows: dict[int, dict[str, float]] = {}
    for n in sizes:
        rows[n] = r = measure(n, k)
        print(
            f"{n:6d} {r['set_variable']:10.1f} us {r['dispatch']:6.1f} us "
            f"{r['start']:6.1f} us {r['close']:6.1f} us",
            flush=True,
        )
    flat = {key: rows[10000][key] / rows[10][key] for key in rows[10]}
    print("ratio 10k/10: " + ", ".join(f"{key} {v:.2f}x" for key, v in flat.items()))
    ok = flat["set_variable"] <= 1.5
    print(
        f"RESULT store: set_variable {rows[1000]['set_variable']:.1f} us at 1,000 instances, "
        f"10k/10 = {flat['set_variable']:.2f}x (flat, goal <= 1.5x: {goal(ok)})"
    )
    save_results("store", {"rows": {str(n): r for n, r in rows.items()}, "flat": flat}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
