"""The TTS engine: the voices of every backend, readiness per voice, emotional prosody and output encoding."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import EngineError, bad_request, server_error
from ..prosody import Prosody, level, pitch_shift, prosody_for, scale_pauses, scale_times
from .common import MAX_SPEED, MIN_SPEED, TTSBackend, Voice, pcm_to_wav
from .espeak import EspeakBackend
from .festival import FestivalBackend
from .piper import PiperBackend

log = logging.getLogger("avatar_engine.tts")

# response_format -> (content type, ffmpeg output args or None for native handling)
RESPONSE_FORMATS: dict[str, tuple[str, Optional[list[str]]]] = {
    "wav": ("audio/wav", None),
    "pcm": ("audio/L16", None),
    "mp3": ("audio/mpeg", ["-f", "mp3", "-c:a", "libmp3lame", "-b:a", "64k"]),
    "opus": ("audio/ogg", ["-f", "ogg", "-c:a", "libopus", "-b:a", "32k"]),
    "flac": ("audio/flac", ["-f", "flac"]),
}
SPEECH_FORMATS = (*RESPONSE_FORMATS, "verbose_json")


@dataclass
class Synthesis:
    pcm: bytes
    sample_rate: int
    timings: Optional[dict]
    prosody: Prosody

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


def default_backends(piper_dir: Path) -> list[TTSBackend]:
    return [PiperBackend(piper_dir), FestivalBackend(), EspeakBackend()]


class TTSEngine:
    """Loads each backend on its own: a backend (or a single voice) that fails is down with its reason, the
    other voices serve. `state()` is `ready` when every voice of a required backend is, `degraded` when some
    voice serves, `error` when none does."""

    def __init__(self, piper_dir: Path, backends: Optional[list[TTSBackend]] = None) -> None:
        self.backends: dict[str, TTSBackend] = {
            b.name: b for b in (default_backends(Path(piper_dir)) if backends is None else backends)}
        self.voices: dict[str, Voice] = {v.id: v for b in self.backends.values() for v in b.voices}
        self.blocked: dict[str, str] = {}  # backend -> why it was not loaded (missing model files)
        self.load_seconds: Optional[float] = None
        self.loaded = False

    # -- lifecycle ------------------------------------------------------------------------------
    def block(self, model_problems: list[str], fix: str) -> list[str]:
        """Marks the backends whose model files are missing or damaged (`quick_check`'s problems) down
        before loading; returns their names."""
        blocked = []
        for backend in self.backends.values():
            prefix = backend.model_prefix
            mine = [p for p in model_problems if prefix and f"/{prefix}" in p.replace("\\", "/")]
            if mine:
                self.blocked[backend.name] = f"model files missing or damaged ({mine[0]}" + (
                    f" and {len(mine) - 1} more" if len(mine) > 1 else "") + f"); {fix}"
                blocked.append(backend.name)
        return blocked

    def load(self) -> None:
        """Blocking. Raises only when no voice at all can speak."""
        t0 = time.monotonic()
        for backend in self.backends.values():
            reason = self.blocked.get(backend.name)
            if reason is None:
                try:
                    backend.load()
                except Exception as exc:
                    reason = str(exc)
                    log.error("tts backend failed to load", extra={"fields": {"backend": backend.name,
                                                                              "error": reason}})
            if reason is not None:
                for voice in backend.voices:
                    voice.ready, voice.error = False, reason
        self.load_seconds = round(time.monotonic() - t0, 3)
        self.loaded = True
        if self.state() == "error":
            raise RuntimeError(self.problem() or "no voice could load")

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()

    # -- readiness ------------------------------------------------------------------------------
    def backend_state(self, backend: TTSBackend) -> str:
        ready = [v.ready for v in backend.voices]
        if all(ready):
            return "ready"
        if not self.loaded:
            return "loading"
        return "degraded" if any(ready) else "error"

    def state(self) -> str:
        if not self.loaded:
            return "loading"
        required = [v for b in self.backends.values() if b.required for v in b.voices]
        if all(v.ready for v in required):
            return "ready"
        return "degraded" if any(v.ready for v in self.voices.values()) else "error"

    def problem(self) -> Optional[str]:
        """Why the engine is not fully ready: each down voice of a required backend with its reason."""
        down = [v for b in self.backends.values() if b.required for v in b.voices if not v.ready and v.error]
        if not down:
            return None
        return "; ".join(f"voice {v.id} ({v.engine}): {v.error}" for v in down)

    def info(self) -> dict[str, Any]:
        return {"voices": {v.id: {"ready": v.ready, "engine": v.engine, **({"error": v.error} if v.error else {})}
                           for v in self.voices.values()},
                "backends": {b.name: {"status": self.backend_state(b), "required": b.required,
                                      "voices": [v.id for v in b.voices], **b.info()}
                             for b in self.backends.values()},
                "load_seconds": self.load_seconds}

    def list_voices(self) -> list[dict[str, Any]]:
        return [v.public() for v in self.voices.values()]

    def require_voice(self, voice: Voice) -> None:
        """503 for a voice that cannot speak now: `engine_loading` while loading, `engine_unavailable`
        (with the reason and the fix) when it failed to load."""
        if voice.ready:
            return
        if not self.loaded:
            raise EngineError(503, "engine_loading", "The tts engine is still loading; retry when GET /health "
                                                     "reports status ok.")
        raise EngineError(503, "engine_unavailable", f"Voice {voice.id} ({voice.engine}) failed to start: "
                                                     f"{voice.error or 'unknown reason'}. Other voices: "
                          + (", ".join(v.id for v in self.voices.values() if v.ready) or "none") + ".")

    # -- synthesis ------------------------------------------------------------------------------
    def synthesize(self, text: str, voice: Voice, speed: float, emotion: str = "neutral",
                   intensity: float = 0.0) -> Synthesis:
        """Blocking: speech with the emotion's prosody, and its phoneme/word timings when the engine
        gives them."""
        if not voice.ready:
            raise EngineError(503, "engine_not_ready", f"Voice {voice.id} is not available: "
                                                       f"{voice.error or 'still loading'}.")
        prosody = prosody_for(emotion, intensity)
        rate = max(MIN_SPEED, min(MAX_SPEED, speed * prosody.rate))
        try:
            pcm, sr, timings = self.backends[voice.engine].synthesize(voice, text, rate)
            x = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
            if len(x) / sr >= 0.15:
                x = scale_pauses(x, sr, timings, prosody.pause_scale)
                x = pitch_shift(x, sr, prosody.semitones)
                x = level(x, prosody.gain_db)
                if timings is not None:
                    scale_times(timings, 1.0, len(x) / sr)
            pcm = x.astype("<i2").tobytes()
        except EngineError:
            raise
        except Exception as exc:
            log.exception("synthesis failed")
            raise server_error("tts_failed", f"Speech synthesis with voice {voice.id} failed "
                                             f"({exc.__class__.__name__}). Retry; if it persists, "
                                             "restart the engine host.") from None
        if len(pcm) / 2 / sr < 0.15:
            raise bad_request("empty_input", f"The input contains nothing voice {voice.id} can speak "
                                             f"(it speaks {voice.language}); no audio was produced.",
                              param="input")
        return Synthesis(pcm, sr, timings, prosody)

    @staticmethod
    def encode(pcm: bytes, sample_rate: int, fmt: str) -> tuple[bytes, str]:
        ctype, ff_args = RESPONSE_FORMATS[fmt]
        if fmt == "pcm":
            return pcm, f"{ctype};rate={sample_rate};channels=1"
        wav = pcm_to_wav(pcm, sample_rate)
        if ff_args is None:
            return wav, ctype
        proc = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "wav",
                               "-i", "pipe:0", *ff_args, "pipe:1"], input=wav,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if proc.returncode != 0 or not proc.stdout:
            raise server_error("encode_failed", f"Encoding the audio as {fmt} failed ("
                               + proc.stderr.decode("utf-8", "replace").strip()[:200] + "); use wav.")
        return proc.stdout, ctype
