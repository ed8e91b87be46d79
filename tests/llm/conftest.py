"""Fixtures for the LLM tests: the tiny causal LM folder (built once) and a real OpenAI-compatible
server process on 127.0.0.1 serving it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.llm.tiny_lm import build_tiny_lm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_lm_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model without a chat template (plain-text prompts)."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm_plain"), chat_template=False)


def server_requests(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/stats", timeout=10) as response:
        return int(json.loads(response.read())["requests"])


@pytest.fixture(scope="session")
def _server_url(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port_file = tmp_path_factory.mktemp("server") / "port"
    command = [
        sys.executable,
        "-m",
        "tests.llm.openai_server",
        "--model",
        str(tiny_lm),
        "--port-file",
        str(port_file),
    ]
    process = subprocess.Popen(command, cwd=REPO)
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port_file.read_text()}/v1"
    process.kill()
    process.wait()


def control(base_url: str, **state: object) -> None:
    """Tell the test server how to treat the next requests (see tests/llm/openai_server.py)."""
    settings = {
        "fail_next": 0,
        "slow_next": 0,
        "slow_seconds": 0.0,
        "delay_all": 0.0,
        "answer": None,
        **state,
    }
    request = urllib.request.Request(
        base_url + "/control",
        data=json.dumps(settings).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def openai_server(_server_url: str) -> Callable[..., str]:
    """``start(**control)``: the shared test server process, told how to treat the next requests."""

    def start(**state: object) -> str:
        control(_server_url, **state)
        return _server_url

    return start
