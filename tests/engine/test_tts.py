"""TTS backends with the real voices (Piper's Joe, Festival's slt) and faults injected: a Festival binary that is
not there, a Festival voice whose package is missing, a backend that cannot load. One broken voice takes down
that voice only; TTS is `degraded`, the other voices speak."""

from __future__ import annotations

import pytest

from avatar_engine.errors import EngineError
from avatar_engine.tts import (EspeakBackend, FestivalBackend, PiperBackend, TTSBackend, TTSEngine, Voice)
from avatar_engine.tts.festival import festival_voices


class BrokenBackend(TTSBackend):
    """Fault injection: a backend whose load fails (as a missing library would)."""

    name = "broken"

    def __init__(self, required: bool = True) -> None:
        super().__init__([Voice("broken-1", "Broken", "en", "male", self.name)])
        self.required = required

    def load(self) -> None:
        raise RuntimeError("libbroken.so.1: cannot open shared object file")

    def synthesize(self, voice, text, speed):  # pragma: no cover - never reached: the voice is down
        raise AssertionError("a down voice must not be asked to speak")


@pytest.fixture(scope="module")
def piper(models_dir):
    backend = PiperBackend(models_dir / "piper")
    yield backend
    backend.close()


def speaks(engine: TTSEngine, voice_id: str, text: str = "Hello there, how are you today?") -> float:
    out = engine.synthesize(text, engine.voices[voice_id], 1.0)
    assert out.timings is not None and len(out.timings["words"]) >= 5, out.timings
    return out.duration


def test_missing_festival_binary_degrades_only_its_voices(piper):
    engine = TTSEngine(piper_dir=None, backends=[piper, FestivalBackend(binary="/nonexistent/festival"),
                                                 EspeakBackend()])
    engine.load()  # does not raise: Piper and espeak serve
    assert engine.state() == "degraded"
    assert engine.voices["en_US-joe-medium"].ready and engine.voices["espeak-ru"].ready
    for voice_id in ("slt", "msu_ru_nsh"):
        voice = engine.voices[voice_id]
        assert not voice.ready and "/nonexistent/festival not found" in voice.error
        with pytest.raises(EngineError) as info:
            engine.require_voice(voice)
        assert (info.value.status, info.value.code) == (503, "engine_unavailable")
        assert "failed to start" in info.value.message and "en_US-joe-medium" in info.value.message
    problem = engine.problem()
    assert "voice slt (festival)" in problem and "voice msu_ru_nsh (festival)" in problem and "joe" not in problem
    health = engine.info()
    assert health["backends"]["piper"]["status"] == "ready"
    assert health["backends"]["festival"]["status"] == "error"
    assert health["voices"]["slt"]["error"].startswith("Festival is not installed")
    # the working voice really speaks: 1-4 s of audio for a six-word sentence, with word timings
    assert 1.0 < speaks(engine, "en_US-joe-medium") < 4.0


def test_one_broken_festival_voice_leaves_the_other(piper):
    voices = festival_voices()[:1] + [Voice("ghost", "Ghost (not installed)", "en", "female", "festival",
                                            festival_voice="voice_ghost_not_installed_hts", festival_speed="hts")]
    engine = TTSEngine(piper_dir=None, backends=[piper, FestivalBackend(voices=voices)])
    engine.load()
    assert engine.state() == "degraded"
    assert engine.voices["slt"].ready and engine.voices["slt"].sample_rate == 32000
    ghost = engine.voices["ghost"]
    assert not ghost.ready and ghost.error.startswith("Festival voice ghost failed: Festival (ghost) could not")
    assert engine.info()["backends"]["festival"]["status"] == "degraded"
    assert 1.0 < speaks(engine, "slt") < 5.0
    with pytest.raises(EngineError) as info:
        engine.synthesize("Hello", ghost, 1.0)
    assert info.value.code == "engine_not_ready"


def test_backend_failing_to_load(piper):
    # required: TTS degraded; optional (like espeak): TTS still ready
    engine = TTSEngine(piper_dir=None, backends=[piper, BrokenBackend()])
    engine.load()
    assert engine.state() == "degraded" and "libbroken" in engine.voices["broken-1"].error
    engine = TTSEngine(piper_dir=None, backends=[piper, BrokenBackend(required=False)])
    engine.load()
    assert engine.state() == "ready" and engine.problem() is None
    # nothing can speak: load raises (the host marks TTS down) and the state says error
    engine = TTSEngine(piper_dir=None, backends=[BrokenBackend()])
    with pytest.raises(RuntimeError, match="libbroken"):
        engine.load()
    assert engine.state() == "error"


def test_missing_model_files_block_only_piper(tmp_path):
    engine = TTSEngine(tmp_path / "piper", backends=[PiperBackend(tmp_path / "piper"), EspeakBackend()])
    assert engine.state() == "loading"
    problems = [f"{tmp_path}/piper/en_US-joe-medium.onnx is missing", f"{tmp_path}/whisper-base/model.bin is missing"]
    assert engine.block(problems, "run: provision") == ["piper"]
    engine.load()
    joe = engine.voices["en_US-joe-medium"]
    assert not joe.ready and joe.error.startswith("model files missing or damaged (") and "run: provision" in joe.error
    assert engine.state() == "degraded"  # espeak serves


def test_prosody_and_speed_apply_through_the_backend(piper):
    engine = TTSEngine(piper_dir=None, backends=[piper])
    engine.load()
    joe = engine.voices["en_US-joe-medium"]
    text = "The quick brown fox jumps over the lazy dog."
    normal = engine.synthesize(text, joe, 1.0)
    fast = engine.synthesize(text, joe, 2.0)
    sad = engine.synthesize(text, joe, 1.0, "sad", 1.0)
    assert fast.duration < normal.duration * 0.75, (fast.duration, normal.duration)
    assert sad.prosody.emotion == "sad" and sad.prosody.rate < 1.0
    assert sad.duration > normal.duration
    with pytest.raises(EngineError) as info:  # nothing to speak
        engine.synthesize("...", joe, 1.0)
    assert info.value.code == "empty_input"
