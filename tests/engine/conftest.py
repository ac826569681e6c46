"""Fixtures for the engine host's tests: the models folder, the test data, an in-process host on a kernel-chosen
port (uvicorn in a thread), and a small HTTP client (urllib: no extra dependency).

Run: ~/.avatar/venv/bin/python -m pytest tests/engine   (scripts/run-tests.sh does, from `make test`)
The models come from `avatar setup` (AVATAR_MODELS_DIR, default ~/.avatar/models)."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "engine"))  # this checkout's avatar_engine, whatever the venv's .pth points at

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = Path(os.environ.get("AVATAR_MODELS_DIR", Path.home() / ".avatar" / "models")).expanduser()
    if not (path / "whisper-base" / "model.bin").is_file():
        pytest.fail(f"no models in {path}: run `avatar setup` (or set AVATAR_MODELS_DIR)")
    return path


def librivox_clips() -> list[tuple[Path, str]]:
    """(wav, reference text) of the five LibriVox clips (Debian pocketsphinx-testdata)."""
    lines = (LIBRIVOX / "transcription").read_text().strip().splitlines()
    clips = []
    for line in lines:
        text, _, rest = line.partition("</s>")
        clip_id = rest.strip().strip("()")
        clips.append((LIBRIVOX / f"{clip_id}.wav", text.replace("<s>", "").strip()))
    return clips


def skimage_image(name: str) -> bytes:
    import skimage
    return (Path(skimage.__file__).parent / "data" / name).read_bytes()


def words(text: str) -> list[str]:
    import re
    return re.findall(r"[\w']+", text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


# -- HTTP -------------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> Optional[str]:
        """The OpenAI-shaped error's code."""
        return self.json()["error"]["code"]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                content_type: Optional[str] = None, timeout: float = 60) -> Reply:
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post_json(self, path: str, obj: Any) -> Reply:
        return self.request("POST", path, json.dumps(obj).encode(), "application/json")

    def post_form(self, path: str, fields: Optional[dict[str, str]] = None,
                  files: Optional[dict[str, bytes]] = None) -> Reply:
        boundary = "test-" + uuid.uuid4().hex
        out = b""
        for name, value in (fields or {}).items():
            out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
        for name, data in (files or {}).items():
            out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
        out += f"--{boundary}--\r\n".encode()
        return self.request("POST", path, out, f"multipart/form-data; boundary={boundary}")


@contextmanager
def serve(app) -> Iterator[Client]:
    """Runs `app` (with its lifespan: engines load, then close) on a kernel-chosen loopback port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test host did not start")
        time.sleep(0.05)
    try:
        yield Client(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
