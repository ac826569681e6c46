"""Request models (pydantic) for every endpoint's parameters: JSON bodies and the text fields of multipart forms.

Each check raises a `PydanticCustomError` whose type is the engine's error code (`unknown_voice`,
`invalid_speed`, …); `parse` turns the first error into the `EngineError` the routes have always answered
(OpenAI shape, `param` = the field), so clients see the same codes and messages as before. Checks that need
the running engines (the voices, Whisper's languages) read them from the validation context.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import EngineError, bad_request
from .prosody import EMOTIONS
from .tts import MAX_INPUT_CHARS, MAX_SPEED, MIN_SPEED, SPEECH_FORMATS, clean_text

ASR_FORMATS = ("json", "verbose_json", "text")
MULTIPLE_MODES = ("error", "largest")

M = TypeVar("M", bound="RequestModel")


def fail(code: str, message: str) -> PydanticCustomError:
    """A validation error carrying the engine's error code as its type (the message is passed through as is)."""
    return PydanticCustomError(code, "{message}", {"message": message})


class RequestModel(BaseModel):
    """Unknown fields are ignored (OpenAI clients send `model`, `user` …)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _absent_is_none(cls, data: Any) -> Any:
        # An absent field runs its validator with None, like an explicit null: the validators own the
        # defaults and give the engine's code for a missing required value (not pydantic's "missing").
        if isinstance(data, dict):
            data = {**{(f.alias or name): None for name, f in cls.model_fields.items()}, **data}
        return data

    @classmethod
    def parse(cls: type[M], data: Any, **context: Any) -> M:
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as exc:
            raise to_engine_error(exc) from None


def to_engine_error(exc: ValidationError) -> EngineError:
    """The first error (fields are checked in declaration order) as a 400 with its code and field."""
    first = exc.errors(include_url=False)[0]
    loc = first.get("loc") or ()
    param = str(loc[0]) if loc else None
    code = first["type"]
    if "message" in (first.get("ctx") or {}):  # one of ours
        return bad_request(code, first["ctx"]["message"], param=param)
    where = ".".join(str(x) for x in loc)
    return bad_request("invalid_request", f"Invalid request: {where}: {first['msg']}" if where
                       else f"Invalid request: {first['msg']}", param=param)


def _number(value: Any, *, allow_bool: bool = True) -> Optional[float]:
    if isinstance(value, bool) and not allow_bool:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
class SpeechRequest(RequestModel):
    """`POST /v1/audio/speech` (JSON). Context: `voices` (id -> Voice)."""

    input: str = ""
    voice: str = ""
    speed: float = 1.0
    response_format: str = "wav"
    emotion: str = "neutral"
    intensity: float = 0.0

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, v: Any) -> str:
        if not isinstance(v, str) or not clean_text(v):
            raise fail("empty_input", "'input' is empty: send the text to speak.")
        text = clean_text(v)
        if len(text) > MAX_INPUT_CHARS:
            raise fail("input_too_long", f"'input' has {len(text)} characters; the limit is {MAX_INPUT_CHARS}. "
                                         "Split the text into several requests.")
        return text

    @field_validator("voice", mode="before")
    @classmethod
    def _voice(cls, v: Any, info: ValidationInfo) -> str:
        voices = (info.context or {}).get("voices") or {}
        if not isinstance(v, str) or v not in voices:
            raise fail("unknown_voice", f"Unknown voice {v!r}. Valid voices: {', '.join(voices)} "
                                        "(see GET /v1/voices).")
        return v

    @field_validator("speed", mode="before")
    @classmethod
    def _speed(cls, v: Any) -> float:
        speed = 1.0 if v is None else _number(v)
        if speed is None:
            raise fail("invalid_speed", f"'speed' must be a number between {MIN_SPEED} and {MAX_SPEED}.")
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise fail("invalid_speed", f"'speed' {speed} is out of range; use a value between {MIN_SPEED} and "
                                        f"{MAX_SPEED} (1.0 = normal).")
        return speed

    @field_validator("response_format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> str:
        fmt = v or "wav"
        if not isinstance(fmt, str) or fmt not in SPEECH_FORMATS:
            raise fail("unsupported_format", f"response_format {fmt!r} is not supported; use one of "
                                             + ", ".join(SPEECH_FORMATS) + ".")
        return fmt

    @field_validator("emotion", mode="before")
    @classmethod
    def _emotion(cls, v: Any) -> str:
        emotion = "neutral" if v is None else v
        if not isinstance(emotion, str) or emotion not in EMOTIONS:
            raise fail("unknown_emotion", f"Unknown emotion {emotion!r}; use one of " + ", ".join(EMOTIONS) + ".")
        return emotion

    @field_validator("intensity", mode="before")
    @classmethod
    def _intensity(cls, v: Any, info: ValidationInfo) -> float:
        if v is None:  # 0 for neutral speech, 0.7 for an emotion
            return 0.0 if info.data.get("emotion", "neutral") == "neutral" else 0.7
        intensity = _number(v)
        if intensity is None:
            raise fail("invalid_intensity", "'intensity' must be a number from 0 to 1.")
        if not 0.0 <= intensity <= 1.0:
            raise fail("invalid_intensity", f"'intensity' {intensity} is out of range; use 0 (none) to 1 "
                                            "(strongest).")
        return intensity


# ---------------------------------------------------------------------------------------------
class ModerationRequest(RequestModel):
    """`POST /v1/moderations` (JSON): {"input": str | [str], "margin": number}. Context: max_texts, max_chars,
    margin (the default)."""

    input: list[str]
    margin: Optional[float] = None

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, v: Any, info: ValidationInfo) -> list[str]:
        texts = [v] if isinstance(v, str) else v
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise fail("invalid_input", "'input' must be a non-empty string or a list of strings.")
        ctx = info.context or {}
        max_texts, max_chars = ctx.get("max_texts", 16), ctx.get("max_chars", 2000)
        if len(texts) > max_texts or any(len(t) > max_chars for t in texts):
            raise fail("input_too_large", f"At most {max_texts} texts of at most {max_chars} characters each.")
        return texts

    @field_validator("margin", mode="before")
    @classmethod
    def _margin(cls, v: Any, info: ValidationInfo) -> float:
        if v is None:
            return float((info.context or {}).get("margin", 0.0))
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not -1 <= v <= 1:
            raise fail("invalid_margin", "'margin' must be a number between -1 and 1.")
        return float(v)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):  # a JSON array or string: no 'input' at all
            return {"input": None, "margin": None}
        return data


# ---------------------------------------------------------------------------------------------
class TranscriptionForm(RequestModel):
    """Text fields of `POST /v1/audio/transcriptions` (multipart). Context: `languages` (Whisper's codes)."""

    timestamp_granularities: str = Field("segment", alias="timestamp_granularities[]")
    denoise: bool = False
    response_format: str = "json"
    temperature: Optional[float] = None
    language: Optional[str] = None
    language_candidates: Optional[str] = None
    prompt: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _either_name(cls, data: Any) -> Any:
        # OpenAI's clients send `timestamp_granularities[]`; a plain `timestamp_granularities` is accepted too.
        if isinstance(data, dict) and not data.get("timestamp_granularities[]"):
            data = {**data, "timestamp_granularities[]": data.get("timestamp_granularities")}
        return data

    @field_validator("timestamp_granularities", mode="before")
    @classmethod
    def _granularity(cls, v: Any) -> str:
        g = (v or "segment").strip()
        if g not in ("segment", "word"):
            raise fail("invalid_parameter", "'timestamp_granularities[]' must be segment or word.")
        return g

    @field_validator("denoise", mode="before")
    @classmethod
    def _denoise(cls, v: Any) -> bool:
        d = (v or "false").strip().lower()
        if d not in ("true", "false", "1", "0"):
            raise fail("invalid_parameter", "'denoise' must be true or false.")
        return d in ("true", "1")

    @field_validator("response_format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> str:
        fmt = (v or "json").strip()
        if fmt not in ASR_FORMATS:
            raise fail("unsupported_format", f"response_format {fmt!r} is not supported; use one of "
                                             + ", ".join(ASR_FORMATS) + ".")
        return fmt

    @field_validator("temperature", mode="before")
    @classmethod
    def _temperature(cls, v: Any) -> Optional[float]:
        if v in (None, ""):
            return None
        t = _number(v)
        if t is None or not 0.0 <= t <= 1.0:
            raise fail("invalid_parameter", "'temperature' must be a number between 0 and 1.")
        return t

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, v: Any, info: ValidationInfo) -> Optional[str]:
        if v is None or v.strip() == "" or v.strip().lower() == "auto":
            return None
        lang = v.strip().lower()
        if lang not in (info.context or {}).get("languages", ()):
            raise fail("unsupported_language", f"Language '{v}' is not supported by Whisper. Use an ISO-639-1 "
                                               "code such as 'en' or 'ru', or omit 'language' to auto-detect.")
        return lang

    @field_validator("language_candidates", mode="before")
    @classmethod
    def _candidates(cls, v: Any, info: ValidationInfo) -> Optional[str]:
        if v is None or v.strip() == "":
            return None
        langs = {c.strip().lower() for c in v.split(",") if c.strip()}
        unknown = sorted(langs - set((info.context or {}).get("languages", ())))
        if unknown:
            raise fail("unsupported_language", f"language_candidates holds {', '.join(unknown)}, not Whisper "
                                               "language codes. Give a comma-separated list such as 'ru,en'.")
        return ",".join(sorted(langs))


class LandmarksForm(RequestModel):
    """Text fields of `POST /v1/face/landmarks` (multipart)."""

    multiple: str = "error"

    @field_validator("multiple", mode="before")
    @classmethod
    def _multiple(cls, v: Any) -> str:
        m = (v or "error").strip().lower()
        if m not in MULTIPLE_MODES:
            raise fail("invalid_parameter", f"'multiple' must be one of {', '.join(MULTIPLE_MODES)} (got {m!r}).")
        return m


class VoiceConvertForm(RequestModel):
    """Text fields of `POST /v1/voice/convert` (multipart)."""

    target_envelope: Optional[list[float]] = None
    f0_log_mean: float
    f0_log_std: float
    formant_ratio: Optional[float] = None

    required: ClassVar[tuple[str, ...]] = ("f0_log_mean", "f0_log_std")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_none(cls, data: Any) -> Any:
        # An empty field is absent: a missing number gets the same message as an empty one.
        return {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in dict(data).items()}

    @field_validator("target_envelope", mode="before")
    @classmethod
    def _envelope(cls, v: Any) -> Optional[list[float]]:
        if v is None:
            return None
        try:
            return [float(x) for x in json.loads(v)]
        except (ValueError, TypeError):
            raise fail("invalid_parameter", "'target_envelope' must be a JSON array of numbers.") from None

    @field_validator("f0_log_mean", "f0_log_std", "formant_ratio", mode="before")
    @classmethod
    def _float(cls, v: Any, info: ValidationInfo) -> Optional[float]:
        name = info.field_name
        if v is None:
            if name in cls.required:
                raise fail("invalid_parameter", f"'{name}' is required.")
            return None
        number = _number(v.strip() if isinstance(v, str) else v)
        if number is None:
            raise fail("invalid_parameter", f"'{name}' must be a number.")
        return number


def form_fields(model: type[RequestModel]) -> tuple[str, ...]:
    """The multipart field names a form model reads (aliases included)."""
    names = []
    for name, field in model.model_fields.items():
        names.append(field.alias or name)
        if field.alias:
            names.append(name)
    return tuple(names)


__all__ = ["SpeechRequest", "ModerationRequest", "TranscriptionForm", "LandmarksForm", "VoiceConvertForm",
           "RequestModel", "form_fields", "to_engine_error"]
