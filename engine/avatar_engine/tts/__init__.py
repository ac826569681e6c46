"""Text to speech: one backend class per engine behind `TTSBackend` -- Piper (en_US-joe-medium, in a worker
process), Festival (slt, msu_ru_nsh) and eSpeak NG (robotic fallback voices) -- and the `TTSEngine` that loads
them one by one, keeps readiness per voice and applies the emotional prosody."""

from .common import MAX_INPUT_CHARS, MAX_SPEED, MIN_SPEED, TTSBackend, Voice, clean_text, pcm_to_wav
from .engine import RESPONSE_FORMATS, SPEECH_FORMATS, Synthesis, TTSEngine, default_backends
from .espeak import EspeakBackend
from .festival import FestivalBackend, festival_text
from .piper import PIPER_VOICE_ID, PiperBackend

__all__ = ["MAX_INPUT_CHARS", "MAX_SPEED", "MIN_SPEED", "PIPER_VOICE_ID", "RESPONSE_FORMATS", "SPEECH_FORMATS",
           "EspeakBackend", "FestivalBackend", "PiperBackend", "Synthesis", "TTSBackend", "TTSEngine", "Voice",
           "clean_text", "default_backends", "festival_text", "pcm_to_wav"]
