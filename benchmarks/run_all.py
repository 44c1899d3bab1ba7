"""Run every benchmark, one after another, and print a Markdown summary of the results.

    python benchmarks/run_all.py            # full run, a few minutes on 2 cores
    python benchmarks/run_all.py --quick    # smaller sizes, one repeat (~1.5 min)
    python benchmarks/run_all.py --only throughput,store

Each script also runs on its own (``python benchmarks/bench_store.py``). The summary
(machine, versions, date, figures) is written to ``benchmarks/results/latest.md``
(git-ignored) for pasting into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine_info

HERE = Path(__file__).resolve().parent
BENCHES = ["import", "store", "runlog", "throughput", "latency", "peers", "rss"]


def run(name: str, quick: bool, out_dir: Path) -> dict[str, Any] | None:
    """Run ``bench_<name>.py`` with its output streaming; return its JSON figures."""
    target = out_dir / f"{name}.json"
    target.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), "--json", str(target)]
    if quick:
        cmd.append("--quick")
    print(f"\n##### bench_{name}.py", flush=True)
    t0 = time.perf_counter()
    code = subprocess.call(cmd)
    print(f"##### bench_{name}.py: exit {code}, {time.perf_counter() - t0:.0f} s", flush=True)
    if code != 0 or not target.exists():
        return None
    data: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return data


def summary(results: dict[str, dict[str, Any] | None], quick: bool) -> str:
    """The Markdown results table."""
    info = machine_info()
    lines = [
        f"Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}"
        + ("  (--quick sizes)" if quick else ""),
        "",
        "Machine: " + info.pop("cpu") + "; " + info.pop("os") + "; Python " + info.pop("python"),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| benchmark | figure | goal | met |",
        "| --- | --- | --- | --- |",
    ]

    def row(bench: str, figure: str, goal: str, ok: bool | None) -> None:
        mark = "-" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {bench} | {figure} | {goal} | {mark} |")

    t = results.get("throughput")
    if t:
        n_a, n_b, c = t.get("n_a", 1000), t.get("n_b", 2000), t.get("c", 50)
        for key, label in (("a_0ms", "0 ms"), ("a_50ms", "50 ms")):
            a = t[key]
            row(
                f"1a throughput, {n_a:,} sends @{c}, {label}",
                f"promptstate {a['promptstate']['rate']:.0f}/s vs bare httpx "
                f"{a['bare httpx']['rate']:.0f}/s: **{a['ratio']:.2f}x** wall "
                f"(same transport: {a['ratio_same_transport']:.2f}x)",
                "<= 1.15x bare httpx",
                a["ratio"] <= 1.15,
            )
        b = t["b"]
        if "cpu_vs_aiohttp" in b:
            row(
                "1b client CPU per tracked send",
                f"promptstate {b['promptstate']['cpu_us']:.0f} us vs bare aiohttp "
                f"{b['bare aiohttp']['cpu_us']:.0f} us per request: "
                f"**{b['cpu_vs_aiohttp']:.1f}x**",
                "<= 3.5x bare aiohttp",
                b["cpu_vs_aiohttp"] <= 3.5,
            )
        row(
            f"1b throughput, {n_b:,} sends @{c}, 0 ms",
            f"promptstate {b['promptstate']['rate']:.0f}/s, bare aiohttp "
            f"{b['bare aiohttp']['rate']:.0f}/s, bare httpx {b['bare httpx']['rate']:.0f}/s: "
            f"**{b['ratio_vs_aiohttp']:.2f}x** aiohttp",
            ">= 0.5x bare aiohttp",
            b["ratio_vs_aiohttp"] >= 0.5,
        )
        row(
            "1b transport choice",
            f"httpx on httpx_aiohttp transport {b['transport_gain']:.1f}x httpx's own",
            "choose by measurement",
            None,
        )
    lat = results.get("latency")
    if lat:
        row(
            f"2 latency-bound, {lat['n']:,} concurrent @200 ms",
            f"promptstate {lat['promptstate']['wall'] * 1000:.0f} ms vs bare aiohttp "
            f"{lat['bare aiohttp']['wall'] * 1000:.0f} ms: **{lat['vs_aiohttp']:.2f}x** "
            f"(floor: {lat['ratio']:.2f}x)",
            "<= 1.5x bare aiohttp",
            lat["vs_aiohttp"] <= 1.5,
        )
    st = results.get("store")
    if st:
        r = st["rows"]
        row(
            "3 store: variable edit",
            f"{r['1000']['set_variable']:.1f} us at 1k instances; 10k/10 = "
            f"**{st['flat']['set_variable']:.2f}x** (start {st['flat']['start']:.1f}x, "
            f"close {st['flat']['close']:.1f}x)",
            "flat 10 -> 10k",
            st["flat"]["set_variable"] <= 1.5,
        )
    rl = results.get("runlog")
    if rl:
        sweep = {
            k[len("sweep_runs_per_s[") : -1]: v
            for k, v in rl.items()
            if k.startswith("sweep_runs_per_s[")
        }
        row(
            "4 run log: echo sweep",
            ", ".join(f"{k}: {v:.0f} runs/s" for k, v in sweep.items()),
            "-",
            None,
        )
        row(
            "4 run log: one tracked send",
            f"+{rl['send_added_ms']:.1f} ms ({rl['send_tracked_ms']:.1f} vs "
            f"{rl['send_untracked_ms']:.1f} ms)",
            "-",
            None,
        )
        row(
            f"4 run log: {rl['rows']:,} runs",
            f"GROUP BY model {rl['group_by_model_ms']:.1f} ms; filter real column "
            f"{rl['filter_column_ms']:.1f} ms vs JSON path {rl['filter_json_ms']:.0f} ms "
            f"({rl['json_vs_column']:.0f}x)",
            "real columns for filters",
            rl["filter_column_ms"] < rl["filter_json_ms"],
        )
    p = results.get("peers")
    if p:
        for label, r in p.get("results", {}).items():
            peer, _, size = label.partition(" / ")
            if peer.startswith("llm"):
                row(
                    f"5 Python API vs simonw/llm {p.get('llm')}, {size.split(', ')[1]}",
                    f"promptstate **{r['wall']:.1f}x** faster (CPU {r['cpu']:.1f}x)",
                    ">= 10x",
                    r["wall"] >= 10,
                )
            else:
                row(
                    f"5 `promptstate sweep` vs {peer} {p.get('promptfoo')}, {size.split(', ')[1]}",
                    f"promptstate CLI **{r['wall']:.1f}x** faster (CPU {r['cpu']:.1f}x)",
                    ">= 5x",
                    r["wall"] >= 5,
                )
    rss = results.get("rss")
    if rss:
        ctl = rss["summary"]["bare aiohttp"]
        for kind, r in rss["summary"].items():
            if kind == "bare aiohttp" or kind.endswith("kept"):
                continue
            row(
                f"7 RSS over {rss['sends']:,} sends, {kind} @{rss['concurrency']}",
                f"{r['rss_first_mb']:.0f} -> {r['rss_end_mb']:.0f} MB: **{r['growth_pct']:+.1f}%** "
                f"({r['mb_per_1000']:+.2f} MB per 1,000; bare aiohttp {ctl['growth_pct']:+.1f}%)",
                "flat within 5%",
                abs(r["growth_pct"]) <= 5,
            )
    im = results.get("import")
    if im:
        row(
            "6 import promptstate",
            f"**{im['median_ms']:.0f} ms** median",
            "<= 150 ms",
            im["median_ms"] <= 150,
        )
    failed = [k for k, v in results.items() if v is None]
    if failed:
        lines += ["", "Failed or skipped: " + ", ".join(failed)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHES))
    args = parser.parse_args(argv)
    names = BENCHES if not args.only else [n.strip() for n in args.only.split(",")]
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    results = {name: run(name, args.quick, out_dir) for name in names}
    text = summary(results, args.quick)
    (out_dir / "latest.md").write_text(text, encoding="utf-8")
    print(f"\n##### summary ({time.perf_counter() - t0:.0f} s in all)\n\n{text}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
