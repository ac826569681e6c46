"""A protocol-faithful Ollama `/api/chat` server backed by an OpenAI-compatible server.

No Ollama binary can be installed on the build machines, so the Ollama client is tested against this
shim in front of the real embedded model (llama-cpp-python). It speaks Ollama's published wire format
(https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion):

* ``POST /api/chat`` with ``model``, ``messages``, ``stream`` (default true), ``options``
  (``temperature``, ``num_predict``, ``top_p``, ``seed``, ``stop``) and ``keep_alive``;
* streaming replies as ``application/x-ndjson``, one object per line —
  ``{"model", "created_at", "message": {"role": "assistant", "content"}, "done": false}`` — and a final
  ``"done": true`` object with ``done_reason``, ``total_duration``, ``load_duration``,
  ``prompt_eval_count``, ``prompt_eval_duration``, ``eval_count`` and ``eval_duration`` (nanoseconds);
* ``stream: false`` as one such object holding the whole message;
* errors as ``{"error": "…"}`` with 400 (bad request) or 404 (unknown model), and ``GET /api/tags``,
  ``GET /api/version``.

Usage: python -m avatar_engine.ollama_shim --upstream http://127.0.0.1:PORT --model NAME [--port 0]
It prints ``listening on PORT`` once ready.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ""
    model = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet access log
        pass

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/api/version":
            self.send_json(200, {"version": "0.0.0-avatar-shim"})
        elif self.path == "/api/tags":
            self.send_json(200, {"models": [{"name": self.model, "model": self.model, "modified_at": now(), "size": 0,
                                             "details": {"format": "gguf", "family": "llama"}}]})
        else:
            self.send_json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        if self.path != "/api/chat":
            self.send_json(404, {"error": "404 page not found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError) as error:
            self.send_json(400, {"error": f"invalid request body: {error}"})
            return
        model = request.get("model")
        if not model:
            self.send_json(400, {"error": "model is required"})
            return
        if model != self.model:
            self.send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        messages = request.get("messages")
        if not isinstance(messages, list):
            self.send_json(400, {"error": "messages must be a list"})
            return
        options = request.get("options") or {}
        upstream_body = {"model": model, "messages": messages, "stream": True,
                         "temperature": options.get("temperature", 0.8),
                         "max_tokens": options.get("num_predict", 128)}
        for key in ("top_p", "seed", "stop"):
            if key in options:
                upstream_body[key] = options[key]
        started = time.monotonic_ns()
        upstream = urllib.request.Request(self.upstream + "/v1/chat/completions", data=json.dumps(upstream_body).encode(),
                                          headers={"Content-Type": "application/json"}, method="POST")
        try:
            response = urllib.request.urlopen(upstream, timeout=300)
        except (urllib.error.URLError, OSError) as error:
            self.send_json(500, {"error": f"model runner is unavailable: {error}"})
            return
        stream = request.get("stream", True)
        if stream:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        text, count, first_at, reason = [], 0, None, "stop"
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            choice = (event.get("choices") or [{}])[0]
            delta = (choice.get("delta") or {}).get("content")
            if choice.get("finish_reason"):
                reason = choice["finish_reason"]
            if not delta:
                continue
            count += 1
            first_at = first_at or time.monotonic_ns()
            text.append(delta)
            if stream:
                self.write_chunk({"model": model, "created_at": now(),
                                  "message": {"role": "assistant", "content": delta}, "done": False})
        ended = time.monotonic_ns()
        first_at = first_at or ended
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        final = {"model": model, "created_at": now(),
                 "message": {"role": "assistant", "content": "" if stream else "".join(text)},
                 "done_reason": "length" if reason == "length" else "stop", "done": True,
                 "total_duration": ended - started, "load_duration": 0,
                 "prompt_eval_count": prompt_tokens, "prompt_eval_duration": first_at - started,
                 "eval_count": count, "eval_duration": ended - first_at}
        if stream:
            self.write_chunk(final)
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_json(200, final)

    def write_chunk(self, body: dict) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL of the OpenAI-compatible server")
    parser.add_argument("--model", required=True, help="the model name this server answers to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    Handler.upstream = args.upstream.rstrip("/")
    Handler.model = args.model
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
