"""Avatar engine host: local ASR, TTS and face-landmark service (OpenAI-shaped HTTP API)."""

__version__ = "0.1.0"
