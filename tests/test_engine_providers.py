"""Runs through the engine against the fake OpenAI/Anthropic server over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptstate as ps
from promptstate.providers import Anthropic, OpenAICompatible, RetryPolicy, Timeouts

from .fake_llm import FakeLLMServer

pytestmark = pytest.mark.anyio

FAKE_KEY = "sk-test-SECRET-0123456789abcdef"
FAKE_ANTHROPIC_KEY = "sk-ant-SECRET-fedcba9876543210"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=1.0, jitter=0.0)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def llm(server: FakeLLMServer, tmp_path: Path) -> Iterator[ps.Session]:
    server.reset()
    s = ps.Session(
        db=str(tmp_path / "runs.duckdb"),
        providers=[
            OpenAICompatible(
                base_url=server.openai_base_url,
                api_key=FAKE_KEY,
                retry=FAST_RETRY,
                timeouts=Timeouts(connect=2, read=0.5),
                max_concurrency=4,
            ),
            Anthropic(
                base_url=server.base_url,
                api_key=FAKE_ANTHROPIC_KEY,
                retry=FAST_RETRY,
                timeouts=Timeouts(connect=2, read=0.5),
            ),
        ],
        prices={"openai:gpt-test": (1.0, 4.0)},
    )
    s.prompts.register(
        ps.Prompt(
            id="ask",
            messages=[ps.system("Answer briefly."), ps.user("{{question}}")],
            model="openai:gpt-test",
            settings={"temperature": 0.2, "max_tokens": 50, "echo_delay": 0.1},
        )
    )
    yield s
    s.close()


def _row(session: ps.Session, run_id: str) -> dict[str, Any]:
    rel = session.runs.sql("SELECT * FROM runs WHERE run_id = ?", [run_id])
    cols = [d[0] for d in rel.description]
    (values,) = rel.fetchall()
    return dict(zip(cols, values, strict=True))


@pytest.mark.parametrize("model", ["openai:gpt-test", "anthropic:claude-test"])
async def test_streamed_reply_usage_and_settings(
    llm: ps.Session, server: FakeLLMServer, model: str
) -> None:
    question = "What is DuckDB, in one line?"
    run = await llm.start("ask", variables={"question": question}, model=model).send()
    assert run.status == "success", run.error
    assert run.response == question
    assert run.input_tokens and run.output_tokens == len(question.split())
    assert run.ttft_ms is not None and run.latency_ms is not None and run.ttft_ms <= run.latency_ms
    body = server.requests[-1].body
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50
    assert "echo_delay" not in body, "echo-only knobs never reach a real API"
    assert body["stream"] is True
    if model.startswith("openai"):
        assert body["stream_options"] == {"include_usage": True}
        assert run.cost_usd == pytest.approx((run.input_tokens * 1 + run.output_tokens * 4) / 1e6)
    else:
        assert body["system"] == "Answer briefly."
        assert run.cost_usd is None  # no price configured
    row = _row(llm, run.run_id)
    assert row["status"] == "success" and row["provider"] == model.split(":")[0]
    assert row["attempts"] == 1


async def test_missing_usage_falls_back(llm: ps.Session) -> None:
    run = await llm.start(
        "ask", variables={"question": "hi there"}, model="openai:gpt+fault:no_usage"
    ).send()
    assert run.status == "success" and run.response == "hi there"
    assert run.input_tokens is None and run.output_tokens is None and run.cost_usd is None


@pytest.mark.parametrize(
    ("fault", "status", "attempts", "error_part"),
    [
        ("429*1", "success", 2, None),
        ("500*2", "success", 3, None),
        ("503", "error", 3, "503"),
        ("400", "error", 1, "400"),
        ("drop_after=2", "error", 1, "Stream"),
        ("malformed", "error", 1, "Stream"),
        ("stall=2", "error", 1, "Timeout"),
        ("slow_first_byte=2", "error", 3, "Timeout"),
        ("error_event", "error", 1, ""),
    ],
)
async def test_faults_end_in_the_right_terminal_row(
    llm: ps.Session,
    server: FakeLLMServer,
    fault: str,
    status: str,
    attempts: int,
    error_part: str | None,
) -> None:
    server.reset()
    inst = llm.start(
        "ask",
        variables={"question": "one two three four five"},
        model=f"openai:gpt-{fault}+fault:{fault}",
    )
    run = await inst.send()
    assert run.status == status, run.error
    assert run.attempts == attempts
    if error_part is not None:
        assert error_part in (run.error or "")
    row = _row(llm, run.run_id)
    assert row["status"] == status and row["attempts"] == attempts
    assert row["finished_at"] is not None
    if fault.startswith("drop_after"):
        assert row["response"], "partial text is kept"
    assert inst.status == status


async def test_retry_after_is_honoured(llm: ps.Session, server: FakeLLMServer) -> None:
    server.reset()
    server.script(["429:retry_after=0.3", "ok"])
    t0 = asyncio.get_running_loop().time()
    run = await llm.start("ask", variables={"question": "q"}).send()
    assert run.status == "success" and run.attempts == 2
    assert asyncio.get_running_loop().time() - t0 >= 0.28


async def test_concurrency_cap_queues_runs(llm: ps.Session, server: FakeLLMServer) -> None:
    insts = [
        llm.start("ask", variables={"question": f"q{i}"}, model="openai:gpt+fault:delay=0.2")
        for i in range(10)
    ]
    tasks = [asyncio.create_task(i.send()) for i in insts]
    for _ in range(200):  # wait for the 'running' rows to commit and the slots to fill
        await asyncio.sleep(0.01)
        if [i.status for i in insts].count("running") == 4:
            break
    statuses = [i.status for i in insts]
    assert statuses.count("running") == 4, statuses  # max_concurrency=4
    assert statuses.count("queued") == 6
    results = await asyncio.gather(*tasks)
    assert all(r.status == "success" for r in results)


async def test_cancel_stops_the_http_stream_promptly(
    llm: ps.Session, server: FakeLLMServer
) -> None:
    server.reset()
    inst = llm.start(
        "ask", variables={"question": " ".join(["w"] * 200)}, model="openai:gpt+fault:drip=0.02"
    )
    task = asyncio.create_task(inst.send())
    while not (inst.last_run and inst.last_run.response):
        await asyncio.sleep(0.01)
    t0 = asyncio.get_running_loop().time()
    inst.cancel()
    run = await task
    assert asyncio.get_running_loop().time() - t0 < 0.5
    assert run.status == "cancelled" and run.response
    assert _row(llm, run.run_id)["status"] == "cancelled"


async def test_many_concurrent_instances(llm: ps.Session) -> None:
    insts = [llm.start("ask", variables={"question": f"question number {i}"}) for i in range(100)]
    results = await asyncio.gather(*(i.send() for i in insts))
    assert [r.response for r in results] == [f"question number {i}" for i in range(100)]
    assert llm.runs.sql("SELECT count(*) FROM runs WHERE status = 'success'").fetchall() == [(100,)]


async def test_env_configuration(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    async with ps.Session() as s:
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")], model="openai:gpt-env"))
        r1 = await s.start("p", variables={"x": "via env"}).send()
        r2 = await s.start("p", variables={"x": "via env"}, model="anthropic:claude-env").send()
        assert (r1.status, r2.status) == ("success", "success")
        assert server.requests[-2].headers.get("authorization") == f"Bearer {FAKE_KEY}"
        assert server.requests[-1].headers.get("x-api-key") == FAKE_ANTHROPIC_KEY


async def test_unknown_provider_is_a_typed_error_before_anything_runs(llm: ps.Session) -> None:
    with pytest.raises(ps.UnknownProviderError, match="nope"):
        llm.start("ask", variables={"question": "q"}, model="nope:model")
    inst = llm.start("ask", variables={"question": "q"})
    with pytest.raises(ps.UnknownProviderError):
        await inst.send(model="gpt-4o")  # no provider prefix
    assert llm.runs.count() == 0


async def test_secrets_never_written_anywhere(
    server: FakeLLMServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "secret.duckdb"
    wrong = OpenAICompatible(
        name="wrong", base_url=server.openai_base_url, api_key=FAKE_KEY, retry=FAST_RETRY
    )
    keyed = FakeLLMServer(api_key="the-right-key").start()
    try:
        s = ps.Session(
            db=str(db),
            providers=[
                OpenAICompatible(
                    name="keyed", base_url=keyed.openai_base_url, api_key=FAKE_KEY, retry=FAST_RETRY
                ),
                wrong,
            ],
        )
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")], model="wrong:m"))
        inst = s.start("p", variables={"x": "hello"})
        ok = await inst.send()
        denied = await inst.send(model="keyed:m")  # the server's 401 message repeats the key
        assert ok.status == "success" and denied.status == "error"
        texts = [
            repr(s),
            repr(s.providers),
            repr(wrong),
            repr(inst),
            repr(ok),
            repr(denied),
            str(denied.error),
            caplog.text,
            json.dumps([str(a) for a in s.store.get_state().runs.values()]),
        ]
        await s.aclose()
        for t in texts:
            assert FAKE_KEY not in t
        assert FAKE_KEY.encode() not in db.read_bytes()
        wal = Path(str(db) + ".wal")
        assert not wal.exists() or FAKE_KEY.encode() not in wal.read_bytes()
    finally:
        keyed.stop()


@pytest.mark.parametrize("fault", ["pings=0.05", "endless,drip=0.005", "header_drip=0.02"])
async def test_a_server_that_never_stops_sending_ends_the_run_in_error(
    server: FakeLLMServer, tmp_path: Path, fault: str
) -> None:
    # each byte resets the read timeout; the total deadline (small here) ends the run
    provider = OpenAICompatible(
        name="slowloris",
        base_url=server.openai_base_url,
        retry=FAST_RETRY,
        timeouts=Timeouts(connect=5, read=5, total=1.5),
    )
    async with ps.Session(db=str(tmp_path / "runs.duckdb"), providers=[provider]) as s:
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")], model="slowloris:m"))
        run = await s.start("p", variables={"x": "a b c"}).send(model=f"slowloris:m+fault:{fault}")
        assert run.status == "error"
        assert "ProviderTimeoutError" in (run.error or "")
        assert "exceeded total deadline of 1.5s" in (run.error or "")
        row = _row(s, run.run_id)
        assert row["status"] == "error" and row["finished_at"] is not None


async def test_a_key_echoed_and_cut_short_never_reaches_the_run_log(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    key = "sk-Rw4Tq9Lm2Xv7Bn5Jc8Hd3Kp"
    provider = OpenAICompatible(
        name="echoer", base_url=server.openai_base_url, api_key=key + "\n", retry=FAST_RETRY
    )
    db = tmp_path / "echo.duckdb"
    async with ps.Session(db=str(db), providers=[provider]) as s:
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")], model="echoer:m"))
        inst = s.start("p", variables={"x": "hi"})
        # the key starts 10 characters before the 500-character cut of an error body
        pad = 490 - len(" you sent authorization: Bearer ")
        runs = [
            await inst.send(model=f"echoer:m+fault:echo={where},pad={pad}")
            for where in ("body", "status", "header")
        ]
        assert [r.status for r in runs] == ["error"] * 3
        assert "[redacted]" in (runs[0].error or "")
        texts = [repr(r) for r in runs] + [str(r.error) for r in runs]
        texts.append(json.dumps([str(a) for a in s.store.get_state().runs.values()]))
    windows = {key[i : i + 6] for i in range(len(key) - 5)}
    stored = db.read_bytes()
    for window in windows:
        assert not any(window in t for t in texts), window
        assert window.encode() not in stored, window
