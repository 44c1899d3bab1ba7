"""Every command and Python block of README.md and docs/prompt-files.md runs as written.

Blocks are run in a temporary directory that mirrors the repository root for the paths
the docs use (a fresh copy of ``examples/``), with this venv's ``bin`` first on PATH.
Shell blocks (```bash, ```sh, ```console) run one command at a time; Python blocks run in
one namespace, in order, the way notebook cells do (top-level ``await`` allowed), except
blocks that call ``asyncio.run``, which run as scripts. A block preceded by
``<!-- skip-test: reason -->`` is not run (fewer than a third may be), and one preceded
by ``<!-- exit-code: N -->`` must exit with N.

Each command and block must also do what the docs say: ``SHELL_EXPECT`` and
``PYTHON_CHECKS`` hold, for each, what its output must show. A new command without an
entry there fails :func:`test_every_block_has_an_expectation`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "docs" / "prompt-files.md")
SHELL_LANGS = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^```([\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(skip-test|exit-code):\s*(.*?)\s*-->$")

# (regex on the command, regex its stdout + stderr must match)
SHELL_EXPECT: list[tuple[str, str]] = [
    (r"^promptstate demo\b", r"ran 5 sends on the offline echo provider \(5 succeeded\)"),
    (
        r"^promptstate runs --db promptstate-demo\.duckdb\s*(#.*)?$",
        r"started_at\s+prompt_id\s+model\s+status\s+latency_ms\s+response\n"
        r"(.*\n)*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+summarize\s+echo\s+success\s+\d+(\.\d)?\s+\S",
    ),
    (r'^promptstate runs "SELECT model, status, count\(\*\)', r"echo\s+success\s+\d+\n\(1 row\)"),
    (
        r"^promptstate runs \"SELECT run_id, status, response FROM runs\".*--csv",
        r"^run_id,status,response\n([0-9a-f]{32},success,.+\n){4,}[0-9a-f]{32},success,.+$",
    ),
    (
        r"^promptstate run examples/prompts/hello\.yaml --var name=Ada( --stream)?\s*$",
        r"^Say hello to Ada in a friendly way\.\n$",
    ),
    (
        r"^promptstate run examples/prompts/hello\.yaml --var name=Ada --var tone=formal",
        r"^Say hello to Ada in a formal way\.\n$",
    ),
    (
        r"^promptstate run examples/prompts/hello\.yaml --var nmae=Ada",
        r"did you mean 'name'\?",
    ),
    (
        r"^promptstate sweep examples/prompts/hello\.yaml --vars examples/data\.csv",
        r"Say hello to Grace in a formal way\.(.*\n)*.*Say hello to Linus in a cheerful way\."
        r"(.*\n)*sweep [0-9a-f]{32}: 3 runs, 0 errors",
    ),
    (
        r"^promptstate prompts list --dir examples/prompts/",
        r"hello\s+[0-9a-f]{12}\s+echo\s+name, tone\s+file(.*\n)*summarize\s+[0-9a-f]{12}\s+echo",
    ),
]

# a unique line of the block -> a Python expression over its namespace that must be true;
# ``out`` lists the block's expression-statement values other than None (a cell's Out[])
PYTHON_CHECKS: dict[str, str] = {
    'inst.set_variable("text", "final")': (
        "out[-5] == ('success', 'Summarize for Ada: final', run.run_id)"
        " and out[-4]['text'].value == 'final' and out[-4]['text'].source == 'instance'"
        " and list(out[-3].columns) == ['prompt_id', 'status', 'latency_ms']"
        " and out[-2] == [('summarize', 'success')] and out[-1] is inst"
    ),
    'inst.bind("text", widgets.Textarea())': (
        "out[-1] == 'typed in the page' and link.closed and slider.value == 0.7"
    ),
    "ps.widgets.PromptRunner(inst)   #": (
        "[type(o).__name__ for o in out] == ['PromptRunner', 'VariablesForm', 'ChatView', "
        "'Composer']"
    ),
    'inst = session.start("summarize", variables={"text": "..."}, model="ollama:llama3.2")': (
        "inst.model == 'ollama:llama3.2' and inst.variables['text'].value == '...'"
    ),
    "await sw ": (
        "sw.done == 6 and sw.errors == 0 and len(out[1]) == 6"
        " and sorted(out[1]['response']) == sorted(f'Summarize for {u}: {t}' "
        "for t in 'abc' for u in ('Ada', 'Bob'))"
    ),
    "session.devtools.jump(3)": (
        "len(out[0]) > 3 and out[-2].status == 'success'"
        " and out[-2].response == sw.results[0].response and len(out[-1].fetchall()) >= 6"
    ),
    "ps.widgets.RunHistory(session)": (
        "[type(o).__name__ for o in out] == ['RunHistory', 'DevTools', 'SweepGrid']"
    ),
}
# a block that runs as a script (it calls asyncio.run): a regex its output must match
SCRIPT_EXPECT: dict[str, str] = {
    "asyncio.run(main())": (
        r"^success Say hello to Ada in a friendly way\.\n\[.*\('hello', 'success'\)\]\n$"
    ),
}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a doc, with the test markers written just before it."""

    path: Path
    line: int
    lang: str
    text: str
    skip: str | None
    exit_code: int

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1).lower()
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        markers: dict[str, str] = {}
        j = start - 1
        while j >= 0 and (not lines[j].strip() or _MARKER.match(lines[j].strip())):
            mm = _MARKER.match(lines[j].strip())
            if mm:
                markers[mm.group(1)] = mm.group(2)
            j -= 1
        blocks.append(
            Block(
                path,
                start + 1,
                lang,
                "\n".join(body) + "\n",
                markers.get("skip-test"),
                int(markers.get("exit-code", "0")),
            )
        )
    return blocks


def shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """``(command, output lines the doc shows for it)`` for each command of a shell block."""
    out: list[tuple[str, list[str]]] = []
    if block.lang == "console":
        for line in block.text.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out and line.strip():
                out[-1][1].append(line)
        return out
    pending = ""
    for line in block.text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line, []))
        pending = ""
    return out


ALL_BLOCKS = [b for doc in DOCS for b in parse_blocks(doc)]
RUNNABLE = [b for b in ALL_BLOCKS if b.lang in SHELL_LANGS or b.lang == "python"]


def _expectation(command: str) -> str | None:
    found = [exp for pat, exp in SHELL_EXPECT if re.search(pat, command)]
    return found[0] if len(found) == 1 else None


def _python_kind(block: Block) -> tuple[str, str] | None:
    """``("script", key)`` or ``("cell", key)`` for a Python block with an expectation."""
    for key in SCRIPT_EXPECT:
        if key in block.text:
            return "script", key
    keys = [k for k in PYTHON_CHECKS if k in block.text]
    return ("cell", keys[0]) if len(keys) == 1 else None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory laid out like the repository root, with a fresh examples/."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", root / "examples")
    return root


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """This venv first on PATH; no API keys; no way to reach a real API host."""
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    e.pop("PROMPTSTATE_DB", None)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e["COLUMNS"] = "120"
    # safety net: any request a doc block would send to a real API goes nowhere
    e["OPENAI_BASE_URL"] = e["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9/v1"
    e["HTTPS_PROXY"] = e["HTTP_PROXY"] = e["ALL_PROXY"] = "http://127.0.0.1:9"
    e["NO_PROXY"] = "127.0.0.1,localhost"
    e["PYTHONUNBUFFERED"] = "1"
    e["JUPYTER_PLATFORM_DIRS"] = "1"
    return e


def test_docs_have_blocks_and_few_are_skipped() -> None:
    assert len(RUNNABLE) >= 10, [b.where for b in RUNNABLE]
    skipped = [b for b in RUNNABLE if b.skip]
    assert all(b.skip.strip() for b in skipped), "a skip-test marker must say why"
    assert len(skipped) * 3 < len(RUNNABLE), [f"{b.where}: {b.skip}" for b in skipped]


def test_every_block_has_an_expectation() -> None:
    missing = []
    for b in RUNNABLE:
        if b.skip:
            continue
        if b.lang == "python":
            if _python_kind(b) is None:
                missing.append(f"{b.where}: python block")
        else:
            missing += [f"{b.where}: {c}" for c, _ in shell_commands(b) if not _expectation(c)]
    assert not missing, "add to SHELL_EXPECT / PYTHON_CHECKS in tests/test_readme.py: " + str(
        missing
    )


def test_shell_commands_run_as_written(workdir: Path, env: dict[str, str]) -> None:
    failures = []
    ran = 0
    for b in RUNNABLE:
        if b.skip or b.lang not in SHELL_LANGS:
            continue
        for command, shown in shell_commands(b):
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            ran += 1
            output = proc.stdout + proc.stderr
            expect = _expectation(command) or r"(?!)"
            problems = []
            if proc.returncode != b.exit_code:
                problems.append(f"exit code {proc.returncode}, the doc implies {b.exit_code}")
            if not re.search(expect, proc.stdout if b.exit_code == 0 else output, re.M):
                problems.append(f"output does not match {expect!r}")
            problems += [f"doc shows {s!r}" for s in shown if s not in output]
            if problems:
                failures.append(f"{b.where}: $ {command}\n  {'; '.join(problems)}\n{output}")
    assert ran >= 10
    assert not failures, "\n\n".join(failures)


_CELL_RUNNER = textwrap.dedent(
    """
    import ast, asyncio, json, sys, traceback, types

    def capture(tree):
        # each top-level expression statement's value goes to `out`, like a cell's Out[]
        body = []
        for node in tree.body:
            if isinstance(node, ast.Expr):
                call = ast.Call(ast.Name("_keep", ast.Load()), [node.value], [])
                node = ast.copy_location(ast.Expr(call), node)
            body.append(node)
        tree.body = body
        return ast.fix_missing_locations(tree)

    async def main():
        ns = {"__name__": "__main__"}
        for cell in json.load(open(sys.argv[1])):
            out = ns["out"] = []
            ns["_keep"] = lambda v, out=out: None if v is None else out.append(v)
            tree = capture(ast.parse(cell["code"], cell["where"]))
            code = compile(tree, cell["where"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            try:
                result = types.FunctionType(code, ns)()
                if asyncio.iscoroutine(result):
                    await result
                ok = eval(cell["check"], ns)
            except BaseException:
                print(f"FAILED {cell['where']}", flush=True)
                traceback.print_exc()
                sys.exit(3)
            if not ok:
                print(f"CHECK FAILED {cell['where']}: {cell['check']}", flush=True)
                print(repr(ns["out"]), flush=True)
                sys.exit(4)
            print(f"OK {cell['where']}", flush=True)

    asyncio.run(main())
    """
)


def test_python_blocks_run_as_written(workdir: Path, env: dict[str, str], tmp_path: Path) -> None:
    cells = []
    scripts = []
    for b in RUNNABLE:
        if b.skip or b.lang != "python":
            continue
        kind = _python_kind(b)
        assert kind is not None, f"{b.where}: no expectation"
        if kind[0] == "script":
            scripts.append((b, SCRIPT_EXPECT[kind[1]]))
        else:
            cells.append({"where": b.where, "code": b.text, "check": PYTHON_CHECKS[kind[1]]})
    assert len(cells) >= 5 and scripts
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    (tmp_path / "runner.py").write_text(_CELL_RUNNER)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "cells.json")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("OK ") == len(cells), proc.stdout
    for b, expect in scripts:
        script = tmp_path / "script.py"
        script.write_text(b.text)
        run = subprocess.run(
            [sys.executable, str(script)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, f"{b.where}\n{run.stdout}{run.stderr}"
        assert re.search(expect, run.stdout), f"{b.where}\n{run.stdout}{run.stderr}"


def test_prompt_file_examples_in_the_docs_are_valid(tmp_path: Path) -> None:
    import promptstate as ps

    doc = [b for b in ALL_BLOCKS if b.path.name == "prompt-files.md"]
    files = [b for b in doc if b.lang in ("yaml", "json")]
    # the first block is examples/prompts/hello.yaml without its comments
    assert yaml.safe_load(files[0].text) == yaml.safe_load(
        (ROOT / "examples" / "prompts" / "hello.yaml").read_text()
    )
    loaded = 0
    for n, b in enumerate(files):
        data = yaml.safe_load(b.text)  # JSON is YAML too
        if not (isinstance(data, dict) and ({"id", "prompts"} & set(data))):
            continue  # a fragment (messages:, variables:) shown inside a field's section
        f = tmp_path / f"block{n}.{b.lang}"
        f.write_text(b.text)
        with ps.Session() as session:
            assert session.prompts.load(f), b.where
        loaded += 1
    assert loaded >= 3


def test_doc_fragments_are_valid_fields() -> None:
    import promptstate as ps

    doc = [b for b in ALL_BLOCKS if b.path.name == "prompt-files.md" and b.lang == "yaml"]
    frags = [yaml.safe_load(b.text) for b in doc]
    variables = next(f["variables"] for f in frags if set(f) == {"variables"})
    messages = next(f["messages"] for f in frags if set(f) == {"messages"})
    p = ps.Prompt(
        id="frag",
        messages=[ps.Message(m["role"], m["content"]) for m in messages],
        variables=variables,
    )
    # the comments in the doc say what each default becomes
    assert p.variables == {
        "name": None,
        "tone": "friendly",
        "text": "",
        "max_words": "50",
        "tags": '["a", "b"]',
    }
    assert p.used_variables == {"user_name", "text"}


# a prompt file -> the reason docs/prompt-files.md's error table gives for it
_BAD_FILES = {
    "id: [1\n": "not valid YAML: ",
    "- 1\n": "prompt #1: expected a mapping, got int",
    "id: x\nmesages: []\nmessages: [{role: user, content: hi}]\n": "unknown field(s) mesages",
    "messages: [{role: user, content: hi}]\n": "missing field 'id'",
    "id: x\n": "missing field 'messages'",
    "id: x\nmessages: []\n": "needs at least one message",
    "id: x\nmessages: {role: user, content: hi}\n": "'messages' must be a list",
    "id: x\nmessages: [{role: user}]\n": "must be a mapping with exactly 'role' and 'content'",
    "id: x\nmessages: [{role: bot, content: hi}]\n": "not 'bot'",
    "id: x\nmessages: [{role: user, content: 3}]\n": "message content must be a string, not int",
    "id: x\nmessages: [{role: user, content: '{{ user.name }}'}]\n": (
        "malformed template tag starting '{{ user.name }}'"
    ),
    "id: x\nmodel: 3\nmessages: [{role: user, content: hi}]\n": "'model' must be a string",
    "id: x\nmodel: ''\nmessages: [{role: user, content: hi}]\n": "model must be a non-empty",
    "id: x\nvariables: {1st: a}\nmessages: [{role: user, content: hi}]\n": "bad variable name",
    "id: x\nvariables: {a: 2024-01-01}\nmessages: [{role: user, content: hi}]\n": "not date",
    "id: x\nvariables: [a]\nmessages: [{role: user, content: hi}]\n": "variables must be a mapping",
    "id: x\nsettings: [1]\nmessages: [{role: user, content: hi}]\n": "settings must be a mapping",
    "id: x\nsettings: {t: .nan}\nmessages: [{role: user, content: hi}]\n": (
        "settings must be JSON-serializable"
    ),
    "id: ''\nmessages: [{role: user, content: hi}]\n": "prompt id must be a non-empty string",
    "- {id: x, messages: [{role: user, content: a}]}\n"
    "- {id: x, messages: [{role: user, content: b}]}\n": "duplicate prompt id 'x'",
}


def test_the_documented_prompt_file_errors_are_the_real_ones(tmp_path: Path) -> None:
    import promptstate as ps

    doc = (ROOT / "docs" / "prompt-files.md").read_text(encoding="utf-8")
    for n, (text, reason) in enumerate(_BAD_FILES.items()):
        assert reason in doc, f"docs/prompt-files.md does not list {reason!r}"
        f = tmp_path / f"bad{n}.yaml"
        f.write_text(text)
        with ps.Session() as session, pytest.raises(ps.PromptFileError) as info:
            session.prompts.load(f)
        assert reason in str(info.value), (text, str(info.value))
        assert str(info.value).startswith(f"{f}: ")


def test_readme_shell_commands_use_paths_that_exist() -> None:
    for b in RUNNABLE:
        if b.lang not in SHELL_LANGS:
            continue
        for command, _ in shell_commands(b):
            for word in shlex.split(command, comments=True):
                if word.startswith(("examples/", "scripts/", "notebooks/")):
                    assert (ROOT / word).exists(), f"{b.where}: {word} does not exist"
