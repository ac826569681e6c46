"""A fake chat server that, like llama.cpp's server, serves ONE request at a time (not a model: canned tokens).

While it streams a reply, a health probe (GET /v1/models) waits in the queue, so it "fails" a short probe deadline.
The request's "model" field picks the behaviour:
  slow:N:DELAY   N tokens, DELAY seconds apart (a busy but healthy model)
  stall:N        N tokens, then silence for 120 s (a hung generation)
Usage: busy_llm_server.py PORT
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        mode, *args = str(request.get("model", "slow:3:0.1")).split(":")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        count = int(args[0])
        delay = float(args[1]) if mode == "slow" else 0.05
        for index in range(count):
            time.sleep(delay)
            self.chunk(f"data: {json.dumps({'choices': [{'delta': {'content': f' word{index}'}}]})}\n\n".encode())
        if mode == "stall":
            time.sleep(120)
        self.chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
