"""The real engine host process (`python -m avatar_engine`), as the Swift supervisor starts it, with a models folder
that lacks Whisper's and Piper's files: it still answers /health 200 `degraded` (so the supervisor keeps it), VAD
serves without Whisper, Festival speaks without Piper, ASR and Joe answer 503 with the provision command; SIGTERM
stops it with status 143; every log line is JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, Client, free_port, librivox_clips


@pytest.fixture(scope="module")
def partial_host(models_dir, tmp_path_factory):
    models = tmp_path_factory.mktemp("models-partial")
    for entry in models_dir.iterdir():
        if entry.name not in ("piper", "whisper-base"):
            (models / entry.name).symlink_to(entry)
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "host.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "engine")] + (
        [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "avatar_engine", "--port", str(port), "--models-dir",
                                 str(models), "--threads", "2"], stdout=err, stderr=subprocess.STDOUT, env=env)
    client = Client(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    health = None
    while time.monotonic() - started < 120 and proc.poll() is None:
        try:
            with urllib.request.urlopen(client.base + "/health", timeout=2) as resp:
                health = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            health = json.loads(err.read())
        except OSError:
            health = None
        if health and health["status"] != "loading":
            break
        time.sleep(0.1)
    print(f"process start -> /health settled: {time.monotonic() - started:.2f} s")
    yield client, proc, log, health
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_degraded_host_keeps_serving(partial_host):
    client, proc, _, health = partial_host
    assert proc.poll() is None
    reply = client.get("/health")
    assert reply.status == 200 and reply.json()["status"] == "degraded", reply.body
    engines = reply.json()["engines"]
    assert engines["asr"]["status"] == "error" and "provision" in engines["asr"]["error"]
    assert engines["vad"]["status"] == "ready" and engines["landmarks"]["status"] == "ready"
    assert engines["tts"]["status"] == "degraded"
    assert "for: asr, tts (piper);" in reply.json()["error"], reply.json()["error"]
    clip, _ = librivox_clips()[0]
    asr = client.post_form("/v1/audio/transcriptions", files={"file": clip.read_bytes()})
    assert asr.status == 503 and asr.code == "engine_unavailable"
    vad = client.post_form("/v1/audio/vad", files={"file": clip.read_bytes()})
    assert vad.status == 200 and max(vad.json()["probabilities"]) > 0.9
    joe = client.post_json("/v1/audio/speech", {"input": "Hello.", "voice": "en_US-joe-medium"})
    assert joe.status == 503 and joe.code == "engine_unavailable" and "provision" in joe.json()["error"]["message"]
    for voice, text in (("slt", "Hello, how are you today?"), ("msu_ru_nsh", "Привет, как у тебя дела?")):
        said = client.post_json("/v1/audio/speech", {"input": text, "voice": voice})
        assert said.status == 200, said.body
        assert float(said.headers["x-audio-duration"]) > 1.0


def test_sigterm_stops_it_and_the_log_is_json(partial_host):
    _, proc, log, _ = partial_host
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM  # re-raised by uvicorn: 143 in a shell
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the host logged nothing"
    records = [json.loads(line) for line in lines]  # raises on a non-JSON line
    messages = {r["msg"] for r in records}
    assert "engines loaded with errors" in messages and "engine degraded" in messages
