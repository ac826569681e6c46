"""Piper (en_US-joe-medium) in a worker process: piper-tts is GPL-3.0, so it stays out of the host process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from ..prosody import phoneme, text_words
from .common import Audio, TTSBackend, Voice

log = logging.getLogger("avatar_engine.tts")

PIPER_VOICE_ID = "en_US-joe-medium"
ENGINE_DIR = Path(__file__).resolve().parent.parent.parent  # engine/: the worker imports avatar_engine from here


class PiperProcess:
    """Owns the Piper worker process; restarts it once if it died."""

    def __init__(self, model: Path, config: Path) -> None:
        self.model, self.config = model, config
        self.proc: Optional[subprocess.Popen] = None
        self.sample_rate: Optional[int] = None
        self.base_length_scale = 1.0
        self._lock = threading.Lock()

    def start(self, timeout: float = 120.0) -> None:
        self.stop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ENGINE_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avatar_engine.piper_worker", "--model", str(self.model),
             "--config", str(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env)
        header = self._read_header(timeout)
        if not header.get("ready"):
            raise RuntimeError(f"piper worker did not start: {header}")
        self.sample_rate = int(header["sample_rate"])
        self.base_length_scale = float(header.get("length_scale") or 1.0)
        self.alignments = bool(header.get("alignments"))

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _read_header(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None
        proc = self.proc
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            raise RuntimeError(f"piper worker exited (status {proc.poll()})")
        return json.loads(line)

    def _request(self, text: str, length_scale: float, silence: float,
                 timeout: float) -> tuple[bytes, int, Optional[list]]:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        proc = self.proc
        proc.stdin.write((json.dumps({"text": text, "length_scale": length_scale,
                                      "sentence_silence": silence}) + "\n").encode())
        proc.stdin.flush()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"piper worker exited (status {proc.poll()})")
            header = json.loads(line)
            if not header.get("ok"):
                raise ValueError(header.get("error", "unknown piper error"))
            n = int(header["nbytes"])
            pcm = proc.stdout.read(n) if n else b""
            if len(pcm) != n:
                raise RuntimeError("piper worker closed the stream mid-response")
        finally:
            timer.cancel()
        return pcm, int(header["sample_rate"]), header.get("phonemes")

    def synthesize(self, text: str, speed: float, silence: float = 0.25) -> tuple[bytes, int, Optional[list]]:
        """(PCM, rate, [[ipa, start_sample, end_sample, word_index], ...] or None)."""
        length_scale = self.base_length_scale / speed
        timeout = 30.0 + len(text) * 0.2
        with self._lock:
            try:
                return self._request(text, length_scale, silence, timeout)
            except (RuntimeError, BrokenPipeError, OSError, json.JSONDecodeError) as exc:
                log.warning("piper worker failed, restarting", extra={"fields": {"error": str(exc)}})
                self.start()
                return self._request(text, length_scale, silence, timeout)


def piper_timings(items: Optional[list], sr: int, text: str) -> Optional[dict]:
    if not items:
        return None
    phonemes = [phoneme(ipa, ipa, a / sr, b / sr) for ipa, a, b, _ in items]
    groups: dict[int, list] = {}
    for ipa, a, b, w in items:
        if w >= 0 and ipa:
            groups.setdefault(w, []).append((a / sr, b / sr, ipa))
    names = text_words(text)
    ordered = [groups[k] for k in sorted(groups)]
    words = [{"text": names[i] if len(names) == len(ordered) else "".join(x[2] for x in g),
              "start": round(g[0][0], 4), "end": round(g[-1][1], 4)} for i, g in enumerate(ordered)]
    return {"source": "piper-alignment", "phonemes": phonemes, "words": words}


class PiperBackend(TTSBackend):
    name = "piper"
    model_prefix = "piper/"

    def __init__(self, piper_dir: Path, voice_id: str = PIPER_VOICE_ID) -> None:
        super().__init__([Voice(voice_id, "Joe (US English, Piper medium)", "en", "male", self.name)])
        self.model = Path(piper_dir) / f"{voice_id}.onnx"
        self.config = Path(piper_dir) / f"{voice_id}.onnx.json"
        self.process: Optional[PiperProcess] = None

    def load(self) -> None:
        """Starts the worker (it loads the ONNX voice and warms it up)."""
        voice = self.voices[0]
        if self.process is not None and self.process.proc is not None and self.process.proc.poll() is None:
            voice.sample_rate, voice.ready = self.process.sample_rate, True  # already running (loaded twice)
            return
        try:
            self.process = PiperProcess(self.model, self.config)
            self.process.start()
        except Exception as exc:
            raise RuntimeError(f"Piper voice failed to load: {exc}") from exc
        voice.sample_rate, voice.ready = self.process.sample_rate, True

    def synthesize(self, voice: Voice, text: str, speed: float) -> Audio:
        assert self.process is not None
        pcm, sr, items = self.process.synthesize(text, speed)
        return pcm, sr, piper_timings(items, sr, text)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()

    def info(self) -> dict[str, Any]:
        proc = self.process.proc if self.process is not None else None
        return {"worker_pid": proc.pid if proc is not None and proc.poll() is None else None}
