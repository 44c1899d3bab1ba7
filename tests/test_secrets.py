"""With fake keys for every provider, run the usual scenarios and grep everything written."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import promptstate as ps
from promptstate.providers import OpenAICompatible, RetryPolicy

from .fake_llm import FakeLLMServer

OPENAI_KEY = "sk-proj-FAKEKEY-openai-7f3a9c1e"
ANTHROPIC_KEY = "sk-ant-api03-FAKEKEY-anthropic-2b8d"
LOCAL_KEY = "token-FAKEKEY-local-55aa"
KEYS = (OPENAI_KEY, ANTHROPIC_KEY, LOCAL_KEY)


def test_keys_appear_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    retry = RetryPolicy(max_attempts=2, base_delay=0.01)
    with FakeLLMServer() as srv, FakeLLMServer(api_key="only-the-real-key") as strict:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.base_url)
        db = tmp_path / "s.duckdb"
        s = ps.Session(
            db=str(db),
            cache=True,
            providers=[
                OpenAICompatible(
                    name="local", base_url=strict.openai_base_url, api_key=LOCAL_KEY, retry=retry
                ),
            ],
        )
        s.prompts.register(
            ps.Prompt(
                id="p",
                messages=[ps.system("sys"), ps.user("{{q}}")],
                model="openai:gpt",
                settings={"max_tokens": 10},
            )
        )
        texts: list[str] = []

        async def scenarios() -> None:
            inst = s.start("p", variables={"q": "hello"})
            for model in (
                "openai:gpt",
                "anthropic:claude",
                "local:m",
                "openai:gpt+fault:500",
                "openai:gpt+fault:401",
                "anthropic:c+fault:drop_after=1",
            ):
                r = await inst.send(model=model)
                texts.extend([repr(r), str(r.error), str(r.response)])
            await inst.send()  # cache hit
            sw = await s.sweep(
                "p", {"q": ["a", "b"]}, models=["openai:gpt", "local:m"], progress=False
            )
            texts.append(repr(sw))
            texts.append(sw.df().to_csv())
            try:
                await s.start("p", variables={"q": "x"}).send(model="local:m")
            except ps.PromptStateError as exc:
                texts.append(str(exc))
            texts.extend(
                [repr(s), repr(s.providers), repr(inst), repr(inst.variables), repr(inst.messages)]
            )
            texts.extend(repr(p) for p in (s.providers.get("openai"), s.providers.get("anthropic")))
            texts.append(s.devtools.export())
            texts.extend(a.summary for a in s.devtools.actions)
            texts.append(repr(s.store.get_state()))
            from promptstate.widgets import PromptRunner

            texts.append(repr(PromptRunner(inst).get_state()))
            await s.aclose()

        asyncio.run(scenarios())
        texts.append(caplog.text)
        blobs = [db.read_bytes()]
        wal = Path(str(db) + ".wal")
        if wal.exists():
            blobs.append(wal.read_bytes())
    for key in KEYS:
        for i, t in enumerate(texts):
            assert key not in t, f"key leaked in text #{i}: {t[:200]}"
        for b in blobs:
            assert key.encode() not in b
    assert "401" in " ".join(texts)  # the strict server's refusal was recorded, redacted
