"""The ``openai_compat`` backend: any OpenAI-compatible server (llama.cpp server, Ollama, vLLM, LM Studio).

Each (text, question) is one request. When the server returns ``top_logprobs`` for the first answer
token, each answer word gets the best log-probability among the returned tokens that begin it, and
the words are normalised into probabilities (as the ``hf`` backend does with exact likelihoods).
Without log-probabilities the model is asked for one word and a strict parser reads it: exactly one
answer word (case, surrounding space and a final full stop ignored) is a one-hot answer; anything else
is a parse failure, scored uniform and counted.

Requests run ``concurrency`` at a time, each with a timeout and retries with exponential backoff
(timeouts, connection errors, 429 and 5xx). Every answer is stored in a SQLite response cache keyed by
(model, prompt hash, question, text hash) as soon as it arrives, so an interrupted evaluation resumes
without asking again. The API key is read from the environment variable ``api_key_env`` names; it is
never part of the model's parameters, the run's config or its logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.errors import ConfigError, ToxmodError
from toxmod.models.llm.backends import ScoringStats, normalised
from toxmod.models.llm.prompts import PromptBuilder, Question, render
from toxmod.redact import redact, register_secret

ROUTES = {"chat": "/chat/completions", "completions": "/completions"}
RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ServerError(ToxmodError):
    """The server could not answer after every retry (or refused the request)."""


@dataclass(frozen=True)
class OpenAICompatSettings:
    """``model.*`` of the ``openai_compat`` backend (``served_name`` is ``model.name``)."""

    base_url: str = "http://127.0.0.1:8080/v1"
    served_name: str = ""
    route: str = "chat"  # chat: /chat/completions (messages) | completions: /completions (plain prompt)
    logprobs: bool = True  # ask for top_logprobs (used when the server returns them)
    top_logprobs: int = 20
    max_tokens: int = 4  # the answer is one word
    timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 1.0  # waits backoff_s, 2x, 4x, ... between attempts
    concurrency: int = 4
    api_key_env: str | None = None  # the NAME of an environment variable holding the key
    cache_dir: str | None = None  # the response cache (SQLite) goes here; None: no cache
    extra_body: Mapping[str, Any] | None = None  # merged into each request, e.g. a server's grammar option

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ConfigError(f"model.route={self.route!r}; expected one of {sorted(ROUTES)}")
        if not self.served_name:
            raise ConfigError("model.name is empty: the model name the server knows (e.g. llama3.1:8b)")
        if not str(self.base_url).startswith(("http://", "https://")):
            raise ConfigError(f"model.base_url={self.base_url!r}: expected http(s)://host:port/v1")
        for key in ("retries", "concurrency", "max_tokens"):
            if int(getattr(self, key)) < (0 if key == "retries" else 1):
                raise ConfigError(f"model.{key}={getattr(self, key)}: out of range")
        if self.timeout_s <= 0:
            raise ConfigError(f"model.timeout_s={self.timeout_s}: expected > 0")

    @classmethod
    def opened(
        cls, params: dict[str, Any], given: Mapping[str, Any], opening: Any, where: Path
    ) -> dict[str, Any]:
        """The server only when the opener names the one the run was scored by (``model.base_url``),
        and the key variable the opener names, never the recorded one."""
        if "pretrained" in given:
            raise ConfigError(f"model.pretrained: {where} scores through a server, not local weights")
        recorded = str(params.get("base_url"))
        url = given.get("base_url")
        if not url:
            raise ConfigError(
                f"{where}: this run was scored by the server at {recorded}; a saved run never chooses "
                f"where texts are sent: pass model.base_url={recorded} to score with it"
            )
        if str(url).rstrip("/") != recorded.rstrip("/"):
            raise ConfigError(
                f"model.base_url={url}: this run's thresholds were fitted on answers from {recorded}; "
                f"score with that server, or train a run against {url}"
            )
        return {**params, "base_url": str(url), "api_key_env": given.get("api_key_env")}

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"model.api_key_env={self.api_key_env}: that environment variable is not set")
        register_secret(key)  # masked in every message from here on (a server may echo it back)
        return key


class ResponseCache:
    """Answers by key in one SQLite file; each answer is committed as soon as it is stored."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), timeout=60)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, prompt_sha256 TEXT, "
            "question TEXT, text_sha256 TEXT, response TEXT)"
        )
        self.connection.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.connection.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, fields: tuple[str, str, str, str], response: dict[str, Any]) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", (key, *fields, json.dumps(response))
        )
        self.connection.commit()

    def __len__(self) -> int:
        return int(self.connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


class OpenAICompatClient:
    """POSTs JSON to an OpenAI-compatible server with a timeout and retries with exponential backoff."""

    def __init__(self, settings: OpenAICompatSettings, stats: ScoringStats | None = None) -> None:
        self.settings = settings
        self.stats = stats or ScoringStats()
        self._key = settings.api_key()

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = self.settings.base_url.rstrip("/") + ROUTES[self.settings.route]
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(body).encode()
        failure = ""
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self.stats.retries += 1
                time.sleep(self.settings.backoff_s * 2 ** (attempt - 1))
            self.stats.requests += 1
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                detail = redact(error.read()[:200].decode(errors="replace"))
                if error.code not in RETRIED_STATUS:
                    raise ServerError(f"{url}: HTTP {error.code} {detail}") from None
                failure = f"HTTP {error.code} {detail}"
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as error:
                failure = redact(f"{type(error).__name__}: {getattr(error, 'reason', error)}")
            except json.JSONDecodeError:
                failure = "the response is not JSON"
        raise ServerError(f"{url}: no answer after {self.settings.retries + 1} attempts ({failure})")


def answer_logprobs(response: dict[str, Any]) -> dict[str, float] | None:
    """The first generated token's top log-probabilities, ``{token: logprob}``, when the server sent them."""
    try:
        logprobs = response["choices"][0].get("logprobs")
    except (KeyError, IndexError, TypeError):
        return None
    if not logprobs:
        return None
    if logprobs.get("content"):  # chat: content[0].top_logprobs = [{token, logprob}, ...]
        first = logprobs["content"][0]
        entries = first.get("top_logprobs") or [first]
        return {str(e["token"]): float(e["logprob"]) for e in entries}
    tops = logprobs.get("top_logprobs")  # completions: top_logprobs[0] = {token: logprob}
    if tops and isinstance(tops[0], dict):
        return {str(k): float(v) for k, v in tops[0].items()}
    return None


def answer_text(response: dict[str, Any]) -> str:
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return str(message.get("content") if "message" in choice else choice.get("text") or "")


def parse_answer(text: str, choices: Sequence[str]) -> int | None:
    """The index of the one answer word ``text`` is, or None (strict: one word, nothing else)."""
    word = text.strip().rstrip(".").strip().lower()
    matches = [i for i, choice in enumerate(choices) if choice.lower() == word]
    return matches[0] if len(matches) == 1 else None


def probabilities_from(response: dict[str, Any], choices: Sequence[str]) -> np.ndarray | None:
    """Probabilities over ``choices`` from one response; None when it cannot be read (a parse failure)."""
    tops = answer_logprobs(response)
    if tops:
        floor = min(tops.values()) - 1.0  # an answer not among the top tokens: less likely than all of them
        values = []
        for choice in choices:
            starts = [
                lp
                for token, lp in tops.items()
                if token.strip() and choice.lower().startswith(token.strip().lower())
            ]
            values.append(max(starts) if starts else floor)
        return normalised(np.array(values))
    index = parse_answer(answer_text(response), choices)
    if index is None:
        return None
    onehot = np.zeros(len(choices))
    onehot[index] = 1.0
    return onehot


class OpenAICompatBackend:
    """Scores texts by asking a server, through the response cache."""

    name = "openai_compat"
    reports_parse_failures = True
    parameter_count = None

    def __init__(self, settings: OpenAICompatSettings) -> None:
        self.settings = settings
        self._cache: ResponseCache | None = None

    def check(self) -> None:
        self.settings.api_key()

    def place_on(self, accelerator: str) -> None:  # the server decides where it runs
        pass

    def size_bytes(self) -> int:
        return 0

    def forget_prompt(self) -> None:
        pass

    @property
    def cache(self) -> ResponseCache | None:
        if self._cache is None and self.settings.cache_dir:
            self._cache = ResponseCache(Path(self.settings.cache_dir) / "llm_responses.sqlite")
        return self._cache

    def request_body(self, builder: PromptBuilder, index: int, text: str) -> dict[str, Any]:
        turns = builder.turns(index, text)
        settings = self.settings
        body: dict[str, Any] = {
            "model": settings.served_name,
            "max_tokens": settings.max_tokens,
            "temperature": 0,
        }
        if settings.route == "chat":
            body["messages"] = [{"role": t.role, "content": t.content} for t in turns]
            if builder.settings.answer_prefix:
                body["messages"].append({"role": "assistant", "content": builder.settings.answer_prefix})
            if settings.logprobs:
                body.update(logprobs=True, top_logprobs=settings.top_logprobs)
        else:
            body["prompt"], _ = render(None, turns, builder.settings.answer_prefix, use_chat_template=False)
            if settings.logprobs:
                body["logprobs"] = settings.top_logprobs
        body.update(settings.extra_body or {})
        return body

    def cache_key(
        self, prompt_sha256: str, question: Question, text: str
    ) -> tuple[str, tuple[str, str, str, str]]:
        text_sha = hashlib.sha256(text.encode()).hexdigest()
        fields = (f"{self.settings.served_name}@{self.settings.route}", prompt_sha256, question.key, text_sha)
        options = [self.settings.logprobs, self.settings.max_tokens, dict(self.settings.extra_body or {})]
        asked = json.dumps([*fields, *options], sort_keys=True)
        return hashlib.sha256(asked.encode()).hexdigest(), fields

    def probabilities(
        self,
        builder: PromptBuilder,
        texts: Sequence[str],
        stats: ScoringStats,
        progress: Callable[[int], None],
    ) -> list[np.ndarray]:
        client = OpenAICompatClient(self.settings, stats)
        prompt_sha = builder.sha256
        questions = builder.questions.questions
        out = [np.full((len(texts), len(q.choices)), 1.0 / len(q.choices)) for q in questions]
        jobs: dict[tuple[int, int], tuple[str, tuple[str, str, str, str]]] = {}
        answers: dict[tuple[int, int], dict[str, Any]] = {}
        for q, question in enumerate(questions):
            for i, text in enumerate(texts):
                key, fields = self.cache_key(prompt_sha, question, text)
                cached = self.cache.get(key) if self.cache is not None else None
                if cached is not None:
                    answers[(q, i)] = cached
                    stats.cached += 1
                else:
                    jobs[(q, i)] = (key, fields)
        done_per_text = {i: sum((q, i) in answers for q in range(len(questions))) for i in range(len(texts))}
        progress(sum(n == len(questions) for n in done_per_text.values()))

        def ask(q: int, i: int) -> tuple[dict[str, Any], float]:
            began = time.perf_counter()
            response = client.post(self.request_body(builder, q, texts[i]))
            return response, time.perf_counter() - began

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            futures = {pool.submit(ask, q, i): (q, i) for (q, i) in jobs}
            try:
                for future in as_completed(futures):
                    q, i = futures[future]
                    response, seconds = future.result()
                    stats.batch_seconds.append((1, seconds))
                    usage = response.get("usage") or {}
                    if isinstance(usage.get("prompt_tokens"), int):
                        stats.prompt_tokens.append(usage["prompt_tokens"])
                    answers[(q, i)] = response
                    if self.cache is not None:
                        key, fields = jobs[(q, i)]
                        self.cache.put(key, fields, response)
                    done_per_text[i] += 1
                    if done_per_text[i] == len(questions):
                        progress(1)
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
        for (q, i), response in answers.items():
            stats.answers += 1
            probabilities = probabilities_from(response, questions[q].choices)
            if probabilities is None:
                stats.parse_failures += 1
            else:
                out[q][i] = probabilities
        return out
