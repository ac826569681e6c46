"""The engine host over HTTP, in-process with the real models (Whisper base, Silero, Piper, MediaPipe, e5-small)
and one fault injected: the Festival binary is missing. /health is 200 `degraded`, only the Festival voices answer
503, everything else serves; bad requests answer the OpenAI error shape with the documented codes."""

from __future__ import annotations

import base64
import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from avatar_engine.app import create_app, default_slots
from avatar_engine.tts import EspeakBackend, FestivalBackend, PiperBackend, TTSEngine
from conftest import librivox_clips, serve, skimage_image, word_error_rate

MAX_UPLOAD = 2 * 1024 * 1024
DATA = Path(__file__).resolve().parents[2] / "engine" / "avatar_engine" / "data"


@pytest.fixture(scope="module")
def host(models_dir):
    tts = TTSEngine(models_dir / "piper", backends=[PiperBackend(models_dir / "piper"),
                                                    FestivalBackend(binary="/nonexistent/festival"), EspeakBackend()])
    slots = default_slots(models_dir, cpu_threads=2, asr_short_window=True, tts=tts)
    app = create_app(models_dir, max_upload=MAX_UPLOAD, load_in_background=False, slots=slots)
    with serve(app) as client:
        yield client


def wav16k(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768, w.getframerate()


def test_health_is_degraded_per_capability(host):
    reply = host.get("/health")
    assert reply.status == 200, reply.body
    health = reply.json()
    assert health["status"] == "degraded"
    engines = health["engines"]
    assert {name: e["status"] for name, e in engines.items()} == {
        "asr": "ready", "vad": "ready", "tts": "degraded", "landmarks": "ready", "voice": "ready",
        "moderation": "ready"}
    tts = engines["tts"]
    assert tts["ready"] is True  # it serves (some voices)
    assert "voice slt (festival)" in tts["error"] and "/nonexistent/festival" in tts["error"]
    assert tts["backends"]["piper"]["status"] == "ready" and tts["backends"]["festival"]["status"] == "error"
    assert tts["voices"]["en_US-joe-medium"] == {"ready": True, "engine": "piper"}
    voices = {v["id"]: v for v in host.get("/v1/voices").json()["voices"]}
    assert voices["en_US-joe-medium"]["sample_rate"] == 22050 and voices["slt"]["sample_rate"] is None


def test_tts_routes_per_voice(host):
    reply = host.post_json("/v1/audio/speech", {"model": "tts-1", "input": "Hello, I am your avatar.",
                                                "voice": "en_US-joe-medium"})
    assert reply.status == 200 and reply.headers["content-type"] == "audio/wav"
    audio, rate = read_wav(reply.body)
    assert rate == 22050 and 1.0 < len(audio) / rate < 3.5
    assert float(reply.headers["x-audio-duration"]) == pytest.approx(len(audio) / rate, abs=0.002)
    down = host.post_json("/v1/audio/speech", {"input": "Hello.", "voice": "slt"})
    assert down.status == 503 and down.code == "engine_unavailable"
    assert down.json()["error"]["type"] == "server_error"
    assert "Voice slt (festival) failed to start: Festival is not installed" in down.json()["error"]["message"]
    timed = host.post_json("/v1/audio/speech", {"input": "Good morning to you.", "voice": "en_US-joe-medium",
                                                "response_format": "verbose_json", "emotion": "happy"})
    body = timed.json()
    assert body["prosody"]["emotion"] == "happy" and body["prosody"]["intensity"] == 0.7
    assert [w["text"] for w in body["timings"]["words"]] == ["Good", "morning", "to", "you"]
    assert body["duration"] == pytest.approx(len(read_wav(base64.b64decode(body["audio"]))[0]) / 22050, abs=0.002)


def test_vad_on_a_real_clip(host):
    clip, _ = librivox_clips()[0]
    speech, rate = read_wav(clip.read_bytes())
    assert rate == 16000
    silence = np.zeros(16000, dtype=np.float32)
    reply = host.post_form("/v1/audio/vad", files={"file": wav16k(np.concatenate([silence, speech]))})
    assert reply.status == 200, reply.body
    body = reply.json()
    probs = np.array(body["probabilities"])
    assert body["frame_seconds"] == 0.032 and len(probs) == int((16000 + len(speech)) // 512)
    quiet, spoken = probs[: 16000 // 512], probs[16000 // 512:]
    assert quiet.max() < 0.1, quiet.max()
    assert (spoken > 0.5).mean() > 0.6, (spoken > 0.5).mean()


def test_asr_librivox(host):
    for path, reference in librivox_clips():
        reply = host.post_form("/v1/audio/transcriptions", {"response_format": "verbose_json", "language": "en"},
                               {"file": path.read_bytes()})
        assert reply.status == 200, reply.body
        body = reply.json()
        assert body["task"] == "transcribe" and body["language"] == "en"
        assert word_error_rate(reference, body["text"]) <= 0.1, (reference, body["text"])


def test_landmarks(host):
    reply = host.post_form("/v1/face/landmarks", files={"file": skimage_image("astronaut.png")})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert (body["width"], body["height"], body["faces"], len(body["landmarks"])) == (512, 512, 1, 478)
    assert len(body["blendshapes"]) == 52 and abs(body["head_pose"]["yaw"]) < 15
    cat = host.post_form("/v1/face/landmarks", files={"file": skimage_image("chelsea.png")})
    assert cat.status == 422 and cat.code == "no_face"
    bad = host.post_form("/v1/face/landmarks", {"multiple": "all"}, {"file": skimage_image("astronaut.png")})
    assert bad.status == 400 and bad.code == "invalid_parameter" and bad.json()["error"]["param"] == "multiple"


def test_moderation_on_held_out_prompts(host):
    items = [i for i in json.loads((DATA / "child_safety_prompts.json").read_text())["items"]
             if i["split"] == "heldout" and len(i["turns"]) == 1]
    texts = [i["turns"][0] for i in items]
    results = []
    for start in range(0, len(texts), 32):
        reply = host.post_json("/v1/moderations", {"input": texts[start:start + 32]})
        assert reply.status == 200, reply.body
        results += reply.json()["results"]
    unsafe = [r["flagged"] for r, i in zip(results, items) if i["kind"] == "unsafe"]
    ordinary = [r["flagged"] for r, i in zip(results, items) if i["kind"] == "ordinary"]
    caught, false_alarms = sum(unsafe) / len(unsafe), sum(ordinary) / len(ordinary)
    print(f"moderation held-out single-turn: caught {caught:.3f} of {len(unsafe)}, "
          f"ordinary flagged {false_alarms:.3f} of {len(ordinary)}")
    assert caught >= CAUGHT_MIN and false_alarms <= FALSE_ALARMS_MAX


# The classifier alone on the held-out single-turn items (60 unsafe, 64 ordinary), measured 2026-12-02: caught
# 51/60 (0.85), ordinary flagged 2/64 (0.031). The limits allow about twice those error rates.
CAUGHT_MIN = 0.70
FALSE_ALARMS_MAX = 0.07


@pytest.mark.parametrize("path,kwargs,status,code", [
    ("/v1/audio/speech", {"json": {"input": "Hi", "voice": "alloy"}}, 400, "unknown_voice"),
    ("/v1/audio/speech", {"json": {"input": "", "voice": "slt"}}, 400, "empty_input"),
    ("/v1/audio/speech", {"raw": b"{not json"}, 400, "invalid_json"),
    ("/v1/audio/speech", {"json": [1, 2]}, 400, "invalid_json"),
    ("/v1/audio/transcriptions", {"raw": b"x"}, 400, "invalid_content_type"),
    ("/v1/audio/transcriptions", {"form": {"language": "en"}}, 400, "missing_file"),
    ("/v1/audio/transcriptions", {"files": {"file": b""}}, 400, "empty_input"),
    ("/v1/audio/transcriptions", {"files": {"file": bytes(range(256)) * 40}}, 400, "unsupported_media"),
    ("/v1/audio/transcriptions", {"form": {"language": "xx"}, "files": {"file": b"RIFF"}}, 400, "unsupported_language"),
    ("/v1/audio/vad", {"files": {"file": b""}}, 400, "empty_input"),
    ("/v1/face/landmarks", {"files": {"file": bytes(range(256)) * 40}}, 400, "unsupported_media"),
    ("/v1/moderations", {"json": {"input": []}}, 400, "invalid_input"),
    ("/v1/voice/convert", {"form": {"f0_log_std": "0.2"}, "files": {"file": b"RIFF"}}, 400, "invalid_parameter"),
    ("/v1/audio/transcriptions", {"files": {"file": b"\0" * (MAX_UPLOAD + 1)}}, 413, "file_too_large"),
    # far over the limit: the host reads and drops the rest, so a client that writes its whole body first still
    # reads the 413 (before, a 6 MB or 40 MB body against a 2 MB limit got "connection reset", 40 times in 40)
    ("/v1/audio/transcriptions", {"files": {"file": b"\0" * (3 * MAX_UPLOAD)}}, 413, "file_too_large"),
    ("/v1/face/landmarks", {"files": {"file": b"\0" * (20 * MAX_UPLOAD)}}, 413, "file_too_large"),
    ("/v1/nothing", {"json": {}}, 404, "not_found"),
])
def test_bad_requests_answer_the_error_shape(host, path, kwargs, status, code):
    if "json" in kwargs:
        reply = host.post_json(path, kwargs["json"])
    elif "raw" in kwargs:
        reply = host.request("POST", path, kwargs["raw"], "application/json")
    else:
        reply = host.post_form(path, kwargs.get("form"), kwargs.get("files"))
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert error["message"] and "Traceback" not in error["message"]
