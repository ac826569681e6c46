"""A fake chat server with failure knobs, for the client fault tests (not a model: canned text).

The first path segment picks the behaviour, so one process serves every case:
  /ok/...          a normal stream ("Hello there. How are you today?")
  /error500/...    HTTP 500 with an OpenAI/Ollama-shaped error body
  /hang/...        accepts the request and never answers (timeout)
  /malformed/...   200 with a stream event that is not JSON
  /disconnect/...  two tokens, then the connection is closed without ending the stream
  /slow/...        1.5 s before the first token, then a normal stream
  /ollamaerror/... Ollama stream: one token, then an {"error": ...} line
  /echo/...        the request body, as the only token of a normal stream
  /splitutf8/...   Russian and emoji tokens as raw UTF-8, every byte its own HTTP chunk (a multi-byte
                   character always arrives split across reads)
The rest of the path is /v1/chat/completions (OpenAI SSE) or /api/chat (Ollama NDJSON).
Prints "listening on PORT" once ready.
"""

import json
import os
import socket
import threading
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENS = ["Hello", " there", ".", " How", " are", " you", " today", "?"]
UTF8_TOKENS = ["Привет", ", ", "как", " дела", "? ", "🙂", " Ёж ест щи."]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def event(self, ollama: bool, token: str, ascii_only: bool = True) -> bytes:
        if ollama:
            return (json.dumps({"model": "fake", "created_at": "2024-01-01T00:00:00Z",
                                "message": {"role": "assistant", "content": token}, "done": False},
                               ensure_ascii=ascii_only) + "\n").encode()
        return f"data: {json.dumps({'choices': [{'delta': {'content': token}}]}, ensure_ascii=ascii_only)}\n\n".encode()

    def end(self, ollama: bool) -> bytes:
        if ollama:
            return (json.dumps({"model": "fake", "created_at": "2024-01-01T00:00:00Z",
                                "message": {"role": "assistant", "content": ""}, "done": True}) + "\n").encode()
        return b"data: [DONE]\n\n"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = self.rfile.read(length)
        mode = self.path.strip("/").split("/")[0]
        ollama = self.path.endswith("/api/chat")
        if mode == "error500":
            body = json.dumps({"error": "model runner crashed"} if ollama else {"error": {"message": "model runner crashed", "code": "internal"}}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "hang":
            time.sleep(60)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if mode == "malformed":
            self.chunk(b"{not json at all\n" if ollama else b"data: {not json at all\n\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if mode == "slow":
            time.sleep(1.5)
        if mode == "splitutf8":
            for token in UTF8_TOKENS:
                for byte in self.event(ollama, token, ascii_only=False):
                    self.chunk(bytes([byte]))
                    time.sleep(0.002)
            self.chunk(self.end(ollama))
            self.wfile.write(b"0\r\n\r\n")
            return
        tokens = [request.decode()] if mode == "echo" else TOKENS
        for index, token in enumerate(tokens):
            if mode == "disconnect" and index == 2:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                return
            if mode == "ollamaerror" and index == 1:
                self.chunk((json.dumps({"error": "an error was encountered while running the model"}) + "\n").encode())
                self.wfile.write(b"0\r\n\r\n")
                return
            self.chunk(self.event(ollama, token))
        self.chunk(self.end(ollama))
        self.wfile.write(b"0\r\n\r\n")


def exit_when_stdin_closes() -> None:
    """The test process holds our stdin; when it exits, so do we."""
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    sys.stdout.flush()
    server.serve_forever()
