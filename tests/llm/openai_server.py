"""A small OpenAI-compatible server for the tests: the tiny causal LM behind ``/v1/completions`` (with
``logprobs`` when asked) and ``/v1/chat/completions`` (never with logprobs), standard library only.

    python -m tests.llm.openai_server --model DIR --port-file F [--fail-first N] [--slow-first N]
        [--slow-seconds S] [--answer WORD]

``--fail-first N``: the first N requests get HTTP 500; ``--slow-first N``: the first N requests wait
``--slow-seconds`` before answering (a client timeout); ``--delay-all``: every request waits this
long; ``--answer``: the chat route answers this text
instead of the model's greedy words. ``GET /stats`` returns the request count.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class TinyModelServer:
    def __init__(self, model_dir: str) -> None:
        torch.set_num_threads(1)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.lock = threading.Lock()
        self.requests = 0
        self.control = {"fail_next": 0, "slow_next": 0, "slow_seconds": 0.0, "delay_all": 0.0, "answer": None}

    def admit(self) -> tuple[bool, float]:
        """Count a request; whether it fails, and how long it waits."""
        with self.lock:
            self.requests += 1
            control = self.control
            if control["fail_next"] > 0:
                control["fail_next"] -= 1
                return True, 0.0
            wait = float(control["delay_all"])
            if control["slow_next"] > 0:
                control["slow_next"] -= 1
                wait += float(control["slow_seconds"])
            return False, wait

    @torch.no_grad()
    def generate(self, prompt: str, max_tokens: int, top: int) -> tuple[str, list[dict[str, float]], int]:
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        prompt_tokens, generated, tops = len(ids), [], []
        with self.lock:  # one forward pass at a time (torch on one thread)
            for _ in range(max_tokens):
                logits = self.model(input_ids=torch.tensor([ids])).logits[0, -1]
                logprobs = torch.log_softmax(logits, dim=-1)
                values, indices = logprobs.topk(min(top, logprobs.numel()))
                tops.append({self.tokenizer.decode([int(i)]): float(v) for v, i in zip(values, indices)})
                token = int(indices[0])
                generated.append(token)
                ids.append(token)
        return self.tokenizer.decode(generated), tops, prompt_tokens


def handler_for(server: TinyModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.endswith("/stats"):
                self.reply(200, {"requests": server.requests})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path.endswith("/control"):
                with server.lock:
                    server.control.update(body)
                self.reply(200, server.control)
                return
            fail, wait = server.admit()
            number = server.requests
            if fail:
                self.reply(500, {"error": {"message": "injected failure"}})
                return
            time.sleep(wait)
            max_tokens = int(body.get("max_tokens") or 4)
            if self.path.endswith("/v1/completions"):
                top = int(body.get("logprobs") or 0)
                text, tops, used = server.generate(str(body["prompt"]), max_tokens, max(top, 1))
                choice: dict[str, Any] = {
                    "index": 0,
                    "text": text,
                    "finish_reason": "length",
                    "logprobs": None,
                }
                if top:
                    choice["logprobs"] = {"tokens": [], "token_logprobs": [], "top_logprobs": tops[:1]}
                self.reply(200, {"id": f"cmpl-{number}", "object": "text_completion", "created": 0,
                                 "model": body.get("model"), "choices": [choice],
                                 "usage": {"prompt_tokens": used, "completion_tokens": max_tokens,
                                           "total_tokens": used + max_tokens}})  # fmt: skip
            elif self.path.endswith("/v1/chat/completions"):
                prompt = server.tokenizer.apply_chat_template(
                    body["messages"], tokenize=False, add_generation_prompt=True
                )
                text, _, used = server.generate(prompt, max_tokens, 1)
                if server.control["answer"] is not None:
                    text = str(server.control["answer"])
                message = {"role": "assistant", "content": text}
                self.reply(200, {"id": f"chat-{number}", "object": "chat.completion", "created": 0,
                                 "model": body.get("model"),
                                 "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                                              "logprobs": None}],
                                 "usage": {"prompt_tokens": used, "completion_tokens": max_tokens,
                                           "total_tokens": used + max_tokens}})  # fmt: skip
            else:
                self.reply(404, {"error": {"message": f"no route {self.path}"}})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port-file", required=True, type=Path)
    args = parser.parse_args()
    server = TinyModelServer(args.model)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(server))
    partial = args.port_file.with_suffix(".partial")
    partial.write_text(str(httpd.server_address[1]))
    partial.rename(args.port_file)  # the port appears whole or not at all
    httpd.serve_forever()


if __name__ == "__main__":
    main()
