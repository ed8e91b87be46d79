"""The ``openai_compat`` backend against a real HTTP server process on 127.0.0.1 serving the tiny model:
logprobs on ``/v1/completions``, parsed one-word answers on ``/v1/chat/completions``, a timeout, a
retry, an unparseable answer, the API key's environment variable, and the response cache surviving
a killed run. The real ``openai`` client package talks to the same server."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.llm.conftest import REPO, server_requests
from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.models.llm import LLMScorer
from toxmod.models.llm.openai_compat import ServerError

pytestmark = pytest.mark.data_free
LABELS = MultiLabelScheme(["scam", "topic_crypto"], none_label="clean")
TEXTS = [
    f"post number {i}: {word}" for i, word in enumerate(["airdrop", "hello", "wallet", "gm", "free", "nft"])
]


def scorer(base_url: str, cache_dir: Path | None, scheme=LABELS, **settings) -> LLMScorer:
    model = LLMScorer(
        backend="openai_compat",
        served_name="tiny",
        base_url=base_url,
        cache_dir=str(cache_dir) if cache_dir else None,
        backoff_s=0.05,
        **settings,
    )
    targets = np.zeros((2, 2), dtype=int) if scheme is LABELS else np.zeros(2, dtype=int)
    return model.fit(["a", "b"], targets, scheme)


def cached_rows(cache_dir: Path) -> int:
    path = cache_dir / "llm_responses.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as connection:
        try:
            return int(connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except sqlite3.OperationalError:  # the file is there, its table not yet (a process starting)
            return 0


def test_the_openai_client_package_reads_both_routes(openai_server) -> None:
    import openai

    url = openai_server()
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    completion = client.completions.create(
        model="tiny", prompt="Is it a scam?\nAnswer:", max_tokens=2, logprobs=5
    )
    assert len(completion.choices[0].logprobs.top_logprobs[0]) == 5
    assert completion.usage.prompt_tokens > 0
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert isinstance(chat.choices[0].message.content, str) and chat.choices[0].logprobs is None


def test_logprobs_give_graded_scores_and_a_second_pass_asks_nothing(openai_server, tmp_path: Path) -> None:
    url = openai_server()
    model = scorer(url, tmp_path, route="completions", top_logprobs=1000)
    scores = model.predict_scores(TEXTS)
    report = model.take_scoring_report()
    assert scores.shape == (6, 2) and ((scores > 0) & (scores < 1)).all()
    assert np.ptp(scores[:, 0]) > 1e-4  # graded from log-probabilities, not one-hot
    assert (
        report["llm/parse_failures"] == 0
        and report["llm/requests"] == 12
        and report["llm/prompt_tokens_max"] > 0
    )
    assert cached_rows(tmp_path) == 12
    before = server_requests(url)
    again = scorer(url, tmp_path, route="completions", top_logprobs=1000).predict_scores(TEXTS)
    assert server_requests(url) == before and np.array_equal(again, scores)


def test_without_logprobs_one_word_answers_are_parsed_strictly(openai_server, tmp_path: Path) -> None:
    yes = scorer(openai_server(answer=" Yes."), None, route="chat")
    assert (yes.predict_scores(TEXTS[:3]) == 1.0).all()
    assert yes.take_scoring_report()["llm/parse_failures"] == 0
    levels = LevelsScheme(["safe", "mild", "toxic", "severe"])
    mild = scorer(openai_server(answer="mild"), None, scheme=levels, route="chat")
    assert (mild.predict_scores(TEXTS[:2]) == [0, 1, 0, 0]).all()
    unclear = scorer(openai_server(answer="maybe, it is mild"), None, scheme=levels, route="chat")
    scores = unclear.predict_scores(TEXTS[:3])
    report = unclear.take_scoring_report()
    assert (
        np.allclose(scores, 0.25)
        and report["llm/parse_failures"] == 3
        and report["llm/parse_failure_rate"] == 1.0
    )


def test_a_timeout_and_a_server_error_are_retried_with_backoff(openai_server) -> None:
    url = openai_server(fail_next=1, slow_next=1, slow_seconds=3)
    model = scorer(url, None, route="completions", timeout_s=1.0, retries=3, concurrency=1)
    scores = model.predict_scores(TEXTS[:1])
    report = model.take_scoring_report()
    assert report["llm/retries"] == 2 and report["llm/requests"] == 4  # 500, timeout, then two answers
    assert np.isfinite(scores).all()
    failing = scorer(openai_server(fail_next=5), None, route="completions", retries=1)
    with pytest.raises(ServerError, match=r"/v1/completions: no answer after 2 attempts \(HTTP 500"):
        failing.predict_scores(TEXTS[:1])


def test_the_api_key_comes_from_the_named_environment_variable_only(openai_server, monkeypatch) -> None:
    url = openai_server()
    with pytest.raises(ConfigError, match="model.api_key_env=TOXMOD_TEST_KEY"):
        scorer(url, None, api_key_env="TOXMOD_TEST_KEY").predict_scores(TEXTS[:1])
    monkeypatch.setenv("TOXMOD_TEST_KEY", "sk-secret-value")
    model = scorer(url, None, api_key_env="TOXMOD_TEST_KEY", route="completions")
    assert model.predict_scores(TEXTS[:1]).shape == (1, 2)
    assert (
        "sk-secret-value" not in repr(model.params()) and model.params()["api_key_env"] == "TOXMOD_TEST_KEY"
    )


KILLED_RUN = """
import sys
import numpy as np
from toxmod.data.schemes import MultiLabelScheme
from toxmod.models.llm import LLMScorer
model = LLMScorer(backend="openai_compat", served_name="tiny", base_url=sys.argv[1], cache_dir=sys.argv[2],
                  route="completions", concurrency=1)
model.fit(["a"], np.zeros((1, 2), dtype=int), MultiLabelScheme(["scam", "topic_crypto"]))
model.predict_scores([f"text {i}" for i in range(12)])
"""


@pytest.mark.slow
def test_the_response_cache_survives_a_killed_run(openai_server, tmp_path: Path) -> None:
    url = openai_server(delay_all=0.25)
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, url, str(tmp_path)], cwd=REPO)
    deadline = time.monotonic() + 60
    while cached_rows(tmp_path) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = cached_rows(tmp_path)
    assert 4 <= kept < 24  # 12 texts x 2 questions were asked for
    before = server_requests(url)
    model = LLMScorer(backend="openai_compat", served_name="tiny", base_url=url, cache_dir=str(tmp_path),
                      route="completions", concurrency=4)  # fmt: skip
    model.fit(["a"], np.zeros((1, 2), dtype=int), MultiLabelScheme(["scam", "topic_crypto"]))
    model.predict_scores([f"text {i}" for i in range(12)])
    report = model.take_scoring_report()
    assert server_requests(url) - before == 24 - kept  # only what the killed run had not stored
    assert report["llm/cached_answers"] == kept and cached_rows(tmp_path) == 24
