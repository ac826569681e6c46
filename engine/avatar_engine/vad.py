"""Voice activity: Silero VAD (the v6 ONNX model bundled inside faster-whisper), a capability of its own: it
needs no file from the models folder, so it serves even when Whisper's model is missing."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

import numpy as np

from .asr import SAMPLE_RATE, VAD_FRAME, decode_audio
from .errors import EngineError


class VADEngine:
    def __init__(self) -> None:
        self.model = None
        self.load_seconds: Optional[float] = None
        self._lock = threading.Lock()

    def load(self) -> None:
        from faster_whisper.vad import get_vad_model

        t0 = time.monotonic()
        model = get_vad_model()
        model(np.zeros(VAD_FRAME * 4, dtype=np.float32))  # warm-up
        self.model = model
        self.load_seconds = round(time.monotonic() - t0, 3)

    def info(self) -> dict[str, Any]:
        return {"model": "silero-vad (faster-whisper)", "frame_seconds": VAD_FRAME / SAMPLE_RATE,
                "load_seconds": self.load_seconds}

    def frame_probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each whole 512-sample frame of 16 kHz float audio."""
        frames = len(audio) // VAD_FRAME
        if frames == 0:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            out = self.model(np.ascontiguousarray(audio[: frames * VAD_FRAME]))
        return np.asarray(out).reshape(-1)[:frames]

    def speech_probabilities(self, data: bytes) -> dict[str, Any]:
        """Silero VAD speech probability per 32 ms frame (512 samples at 16 kHz) of any audio ffmpeg reads.
        Blocking."""
        if self.model is None:
            raise EngineError(503, "engine_not_ready", "The voice activity detector is still loading; "
                                                       "retry when GET /health says ready.")
        audio = decode_audio(data)
        probs = [round(float(p), 3) for p in self.frame_probabilities(audio)]
        return {"frame_seconds": VAD_FRAME / SAMPLE_RATE, "duration": round(len(audio) / SAMPLE_RATE, 3),
                "probabilities": probs}
