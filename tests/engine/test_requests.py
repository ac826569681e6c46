"""Request validation (pydantic models): each bad field answers its own code, message and `param`, in the
OpenAI error shape the Swift client reads (EngineHTTP.rejection: error.code, error.message)."""

from __future__ import annotations

import pytest

from avatar_engine.errors import EngineError
from avatar_engine.requests import (LandmarksForm, ModerationRequest, SpeechRequest, TranscriptionForm,
                                    VoiceConvertForm, form_fields)
from avatar_engine.tts import Voice

VOICES = {"slt": Voice("slt", "SLT", "en", "female", "festival"),
          "en_US-joe-medium": Voice("en_US-joe-medium", "Joe", "en", "male", "piper")}


def speech_error(body: dict) -> EngineError:
    with pytest.raises(EngineError) as info:
        SpeechRequest.parse(body, voices=VOICES)
    return info.value


def test_speech_defaults_and_cleaning():
    req = SpeechRequest.parse({"model": "tts-1", "input": "  Hello,\n\tworld \x07 ", "voice": "slt"}, voices=VOICES)
    assert (req.input, req.voice, req.speed, req.response_format, req.emotion, req.intensity) == \
        ("Hello, world", "slt", 1.0, "wav", "neutral", 0.0)
    # an emotion without an intensity gets 0.7; numbers may come as strings (as before)
    req = SpeechRequest.parse({"input": "Hi", "voice": "slt", "emotion": "happy", "speed": "1.5"}, voices=VOICES)
    assert (req.emotion, req.intensity, req.speed) == ("happy", 0.7, 1.5)
    req = SpeechRequest.parse({"input": "Hi", "voice": "slt", "response_format": "verbose_json", "intensity": 0},
                              voices=VOICES)
    assert (req.response_format, req.intensity) == ("verbose_json", 0.0)


@pytest.mark.parametrize("body,code,param,message", [
    ({"voice": "slt"}, "empty_input", "input", "'input' is empty: send the text to speak."),
    ({"input": " \n ", "voice": "slt"}, "empty_input", "input", "'input' is empty"),
    ({"input": 42, "voice": "slt"}, "empty_input", "input", "'input' is empty"),
    ({"input": "a" * 4097, "voice": "slt"}, "input_too_long", "input", "'input' has 4097 characters; the limit is 4096"),
    ({"input": "Hi", "voice": "alloy"}, "unknown_voice", "voice",
     "Unknown voice 'alloy'. Valid voices: slt, en_US-joe-medium (see GET /v1/voices)."),
    ({"input": "Hi"}, "unknown_voice", "voice", "Unknown voice None."),
    ({"input": "Hi", "voice": "slt", "speed": "fast"}, "invalid_speed", "speed", "'speed' must be a number"),
    ({"input": "Hi", "voice": "slt", "speed": 5}, "invalid_speed", "speed", "'speed' 5.0 is out of range"),
    ({"input": "Hi", "voice": "slt", "response_format": "aac"}, "unsupported_format", "response_format",
     "response_format 'aac' is not supported; use one of wav, pcm, mp3, opus, flac, verbose_json."),
    ({"input": "Hi", "voice": "slt", "emotion": "furious"}, "unknown_emotion", "emotion", "Unknown emotion 'furious'"),
    ({"input": "Hi", "voice": "slt", "intensity": "x"}, "invalid_intensity", "intensity", "'intensity' must be"),
    ({"input": "Hi", "voice": "slt", "intensity": 1.5}, "invalid_intensity", "intensity", "'intensity' 1.5 is out"),
])
def test_speech_errors(body, code, param, message):
    err = speech_error(body)
    assert (err.status, err.code, err.param) == (400, code, param)
    assert err.message.startswith(message), err.message
    assert err.body() == {"error": {"message": err.message, "type": "invalid_request_error", "code": code,
                                    "param": param}}


def test_speech_first_bad_field_wins_in_declaration_order():
    # input, voice, speed, response_format, emotion, intensity: the old hand-written order
    assert speech_error({"input": "", "voice": "nope", "speed": 9}).code == "empty_input"
    assert speech_error({"input": "Hi", "voice": "nope", "speed": 9}).code == "unknown_voice"
    assert speech_error({"input": "Hi", "voice": "slt", "speed": 9, "emotion": "x"}).code == "invalid_speed"


def test_moderation():
    req = ModerationRequest.parse({"input": "hello"}, max_texts=2, max_chars=10, margin=0.02)
    assert (req.input, req.margin) == (["hello"], 0.02)
    assert ModerationRequest.parse({"input": ["a", "b"], "margin": -1}, margin=0.02).margin == -1.0
    for body, code in [({"input": []}, "invalid_input"), ({"input": [1]}, "invalid_input"), ([1, 2], "invalid_input"),
                       ({}, "invalid_input"), ({"input": ["a"] * 3}, "input_too_large"),
                       ({"input": "x" * 11}, "input_too_large"), ({"input": "a", "margin": True}, "invalid_margin"),
                       ({"input": "a", "margin": 2}, "invalid_margin"), ({"input": "a", "margin": "0"}, "invalid_margin")]:
        with pytest.raises(EngineError) as info:
            ModerationRequest.parse(body, max_texts=2, max_chars=10, margin=0.02)
        assert info.value.code == code, body
        assert info.value.param == ("margin" if code == "invalid_margin" else "input")


def test_transcription_form():
    fields = form_fields(TranscriptionForm)
    assert "timestamp_granularities[]" in fields and "timestamp_granularities" in fields
    empty = {name: None for name in fields}
    form = TranscriptionForm.parse(empty, languages={"en", "ru"})
    assert (form.timestamp_granularities, form.denoise, form.response_format, form.temperature, form.language,
            form.language_candidates) == ("segment", False, "json", None, None, None)
    form = TranscriptionForm.parse({**empty, "timestamp_granularities": "word", "denoise": "1", "language": " RU ",
                                    "language_candidates": "ru, en", "temperature": "0.2",
                                    "response_format": "verbose_json"}, languages={"en", "ru"})
    assert (form.timestamp_granularities, form.denoise, form.language, form.language_candidates, form.temperature,
            form.response_format) == ("word", True, "ru", "en,ru", 0.2, "verbose_json")
    assert TranscriptionForm.parse({**empty, "language": "auto"}, languages={"en"}).language is None
    for extra, code, param in [({"timestamp_granularities[]": "char"}, "invalid_parameter", "timestamp_granularities[]"),
                               ({"denoise": "maybe"}, "invalid_parameter", "denoise"),
                               ({"response_format": "srt"}, "unsupported_format", "response_format"),
                               ({"temperature": "hot"}, "invalid_parameter", "temperature"),
                               ({"temperature": "1.5"}, "invalid_parameter", "temperature"),
                               ({"language": "xx"}, "unsupported_language", "language"),
                               ({"language_candidates": "ru,xx"}, "unsupported_language", "language_candidates")]:
        with pytest.raises(EngineError) as info:
            TranscriptionForm.parse({**empty, **extra}, languages={"en", "ru"})
        assert (info.value.code, info.value.param) == (code, param), extra


def test_landmarks_and_convert_forms():
    assert LandmarksForm.parse({"multiple": " Largest "}).multiple == "largest"
    assert LandmarksForm.parse({"multiple": None}).multiple == "error"
    with pytest.raises(EngineError) as info:
        LandmarksForm.parse({"multiple": "all"})
    assert (info.value.code, info.value.param) == ("invalid_parameter", "multiple")
    assert info.value.message == "'multiple' must be one of error, largest (got 'all')."

    form = VoiceConvertForm.parse({"f0_log_mean": "5.1", "f0_log_std": "0.2", "formant_ratio": "",
                                   "target_envelope": "[1, 2.5]"})
    assert (form.f0_log_mean, form.f0_log_std, form.formant_ratio, form.target_envelope) == (5.1, 0.2, None, [1.0, 2.5])
    for fields, param, message in [({"f0_log_std": "0.2"}, "f0_log_mean", "'f0_log_mean' is required."),
                                   ({"f0_log_mean": "x", "f0_log_std": "0.2"}, "f0_log_mean", "'f0_log_mean' must be a number."),
                                   ({"f0_log_mean": "5", "f0_log_std": "0.2", "target_envelope": "{"}, "target_envelope",
                                    "'target_envelope' must be a JSON array of numbers.")]:
        with pytest.raises(EngineError) as info:
            VoiceConvertForm.parse(fields)
        assert (info.value.code, info.value.param, info.value.message) == ("invalid_parameter", param, message)
