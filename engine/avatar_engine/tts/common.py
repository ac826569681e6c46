"""What every TTS backend shares: the voice record, the backend interface, text clean-up and WAV helpers."""

from __future__ import annotations

import io
import re
import wave
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

MAX_INPUT_CHARS = 4096
MIN_SPEED, MAX_SPEED = 0.25, 4.0

# (PCM s16le mono, sample rate, timings {"source", "phonemes", "words"} or None)
Audio = tuple[bytes, int, Optional[dict]]


@dataclass
class Voice:
    id: str
    name: str
    language: str
    gender: str
    engine: str                            # the backend's name: piper | festival | espeak
    festival_voice: Optional[str] = None  # festival voice function, e.g. voice_cmu_us_slt_arctic_hts
    festival_speed: str = "none"           # "hts" (engine rate) | "sox" (tempo post-processing)
    espeak_voice: Optional[str] = None     # espeak-ng voice name, e.g. "de"
    sample_rate: Optional[int] = None
    ready: bool = False
    error: Optional[str] = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "language": self.language, "gender": self.gender,
                "engine": self.engine, "sample_rate": self.sample_rate}


class TTSBackend(ABC):
    """One speech engine behind `/v1/audio/speech`. The TTS engine loads each backend on its own, so one
    that fails (a missing binary, a damaged model) takes down its voices only."""

    #: the `engine` of its voices and its key in /health
    name: str = ""
    #: False for a fallback whose absence does not degrade TTS (espeak-ng)
    required: bool = True
    #: folder under the models dir whose files (engine/models.json) it needs, e.g. "piper/"
    model_prefix: Optional[str] = None

    def __init__(self, voices: list[Voice]) -> None:
        self.voices = voices

    @abstractmethod
    def load(self) -> None:
        """Blocking, at start-up: make each voice ready (set `ready`, `sample_rate`) or record why not
        (`error`). Raising marks every voice of the backend down with that reason."""

    @abstractmethod
    def synthesize(self, voice: Voice, text: str, speed: float) -> Audio:
        """Blocking: speech for `text` (already cleaned) at `speed` (1.0 = normal). Raises EngineError for
        text the voice cannot speak; anything else is a tts_failed."""

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()


def pcm_to_wav(pcm: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def read_wav_mono16(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"unexpected wav format {w.getnchannels()}ch/{8 * w.getsampwidth()}bit")
        return w.readframes(w.getnframes()), w.getframerate()


