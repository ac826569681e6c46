"""HTTP routes of the engine host (FastAPI).  All errors use the OpenAI error shape."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .asr import ASREngine
from .errors import EngineError, INVALID_REQUEST, SERVER_ERROR, bad_request, error_body
from .landmarks import LandmarkEngine
from .moderation import MARGIN, MAX_CHARS, MAX_TEXTS, ModerationEngine
from .provision import ProvisionError, quick_check
from .requests import (LandmarksForm, ModerationRequest, SpeechRequest, TranscriptionForm, VoiceConvertForm,
                       form_fields)
from .tts import TTSEngine, pcm_to_wav
from .vad import VADEngine
from .voice import VoiceEngine

log = logging.getLogger("avatar_engine.app")

DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024


DRAIN_SLACK = 64 * 1024 * 1024  # how much of an over-limit body is still read (and dropped) so the 413 arrives


class BodyTooLarge(Exception):
    pass


def _json_error(status: int, message: str, code: str, type_: Optional[str] = None,
                param: Optional[str] = None) -> JSONResponse:
    type_ = type_ or (INVALID_REQUEST if status < 500 else SERVER_ERROR)
    return JSONResponse(error_body(message, type_, code, param), status_code=status)


# ---------------------------------------------------------------------------------------------
class GuardMiddleware:
    """Pure ASGI: request log line, upload size limit (413) and last-resort 500 in OpenAI shape."""

    def __init__(self, app, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.monotonic()
        state = {"started": False, "status": 0, "received": 0}
        limit = self.max_body
        limit_mb = limit / (1024 * 1024)

        async def send_json(resp: JSONResponse) -> None:
            await resp(scope, receive, send_wrapper)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-process-time", f"{time.monotonic() - t0:.4f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        too_large = _json_error(413, f"The upload is larger than {limit_mb:.0f} MB. Send a shorter "
                                     "recording or a smaller image.", "file_too_large")
        # A client that sends its whole body before it reads (urllib, requests, most SDKs) only sees the 413 if the
        # body was read: closing a socket with unread bytes makes the kernel reset the connection, and the client
        # gets "connection reset" or "broken pipe" instead of the answer. So the rest of an over-limit body is
        # read and dropped, up to DRAIN_SLACK more; a body bigger than that is answered and the connection closed.
        async def drain(read: int) -> None:
            while read <= limit + DRAIN_SLACK:
                message = await receive()
                if message["type"] != "http.request":
                    return
                read += len(message.get("body", b""))
                if not message.get("more_body"):
                    return

        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        try:
            if cl is not None and int(cl) > limit:
                if int(cl) <= limit + DRAIN_SLACK:
                    await drain(0)
                await send_json(too_large)
                return self._log(scope, state, t0)
        except ValueError:
            pass

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLarge:
            if not state["started"]:
                await drain(state["received"])
                await send_json(too_large)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": scope.get("path")}})
            if not state["started"]:
                await send_json(_json_error(500, "The engine hit an internal error while handling this "
                                                 "request. Retry; if it persists, restart the engine "
                                                 "host and check its log.", "internal_error"))
        self._log(scope, state, t0)

    @staticmethod
    def _log(scope, state, t0) -> None:
        level = logging.DEBUG if scope.get("path") == "/health" else logging.INFO
        log.log(level, "request", extra={"fields": {
            "method": scope.get("method"), "path": scope.get("path"), "status": state["status"],
            "ms": round((time.monotonic() - t0) * 1000, 1)}})


# ---------------------------------------------------------------------------------------------
SERVING = ("ready", "degraded")


@dataclass
class EngineSlot:
    """One capability of the host (asr, vad, tts, landmarks, voice, moderation) and its readiness:
    loading | ready | degraded (it serves, part of it is down: a TTS voice) | error (down, `error` says why)."""
    name: str
    engine: Any
    status: str = "loading"
    error: Optional[str] = None
    # An optional engine (the child-safety classifier) does not decide /health: its clients fall back without it.
    required: bool = True
    # Folder under the models dir whose files (engine/models.json) it needs; TTS checks per backend itself.
    model_prefix: Optional[str] = None

    def describe(self) -> dict[str, Any]:
        d = dict(self.engine.info()) if self.engine is not None else {}
        d["ready"] = self.status in SERVING
        d["status"] = self.status
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class Engines:
    models_dir: Path
    slots: dict[str, EngineSlot] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    ready_after_s: Optional[float] = None
    setup_error: Optional[str] = None

    def require(self, name: str) -> Any:
        slot = self.slots[name]
        if slot.status in SERVING:
            return slot.engine
        if slot.status == "loading":
            raise EngineError(503, "engine_loading", f"The {name} engine is still loading; retry when "
                                                     "GET /health reports status ok.")
        raise EngineError(503, "engine_unavailable", f"The {name} engine failed to start: {slot.error}")


def host_status(slots: dict[str, EngineSlot]) -> tuple[str, int]:
    """The host's state for /health from its required capabilities: ok (200) when all are ready; loading
    (503) while one loads; degraded (200) when some serve and others are down -- the supervisor keeps the
    host and each request is answered by its own capability; error (503) when none serves."""
    states = [s.status for s in slots.values() if s.required]
    if all(state == "ready" for state in states):
        return "ok", 200
    if "loading" in states:
        return "loading", 503
    if any(state in SERVING for state in states):
        return "degraded", 200
    return "error", 503


def load_engines(engines: Engines) -> None:
    """Runs in background threads at start-up: every model is loaded eagerly and warmed up."""
    try:
        problems = quick_check(engines.models_dir)
    except ProvisionError as exc:
        problems = [f"{exc}"]
        for slot in engines.slots.values():
            slot.status, slot.error = "error", str(exc)
    fix = f"run: python -m avatar_engine.provision --models-dir {engines.models_dir}"
    blocked = []
    for name, slot in engines.slots.items():
        prefix = slot.model_prefix
        mine = [p for p in problems if prefix and f"/{prefix}" in p.replace("\\", "/")]
        if mine:
            slot.status = "error"
            slot.error = f"model files missing or damaged ({mine[0]}" + (
                f" and {len(mine) - 1} more" if len(mine) > 1 else "") + f"); {fix}"
        elif slot.status != "error" and hasattr(slot.engine, "block"):  # TTS: only that backend's voices
            blocked += [f"{name} ({backend})" for backend in slot.engine.block(problems, fix)]
        if slot.status == "error":
            blocked.append(name)
    if blocked:
        engines.setup_error = f"model files are missing or damaged for: {', '.join(blocked)}; {fix}"
        log.error("models missing", extra={"fields": {"problems": problems}})

    def load(slot: EngineSlot) -> None:
        t0 = time.monotonic()
        try:
            slot.engine.load()
            # An engine with parts (TTS: voices) says itself whether all of it serves.
            slot.status = slot.engine.state() if hasattr(slot.engine, "state") else "ready"
            slot.error = slot.engine.problem() if hasattr(slot.engine, "problem") else None
            log.info("engine ready" if slot.status == "ready" else "engine degraded",
                     extra={"fields": {"engine": slot.name, "seconds": round(time.monotonic() - t0, 3),
                                       **({"error": slot.error} if slot.error else {})}})
        except Exception as exc:
            slot.status, slot.error = "error", f"{exc.__class__.__name__}: {exc}"
            log.exception("engine failed to load", extra={"fields": {"engine": slot.name}})

    # TTS mostly waits on subprocesses (Piper worker start, Festival warm-up): overlap it with the
    # in-process loads.
    todo = [s for s in engines.slots.values() if s.status == "loading"]
    tts = [s for s in todo if s.name == "tts"]
    t = threading.Thread(target=lambda: [load(s) for s in tts], name="load-tts", daemon=True)
    t.start()
    for slot in todo:
        if slot.name != "tts":
            load(slot)
    t.join()
    engines.ready_after_s = round(time.monotonic() - engines.started, 3)
    ok = all(s.status == "ready" for s in engines.slots.values() if s.required)
    log.info("engines loaded" if ok else "engines loaded with errors",
             extra={"fields": {"ready": ok, "seconds": engines.ready_after_s}})


# ---------------------------------------------------------------------------------------------
async def _read_form(request: Request, fields: tuple[str, ...],
                     files: tuple[str, ...] = ()) -> tuple[bytes, dict[str, Any]]:
    """The 'file' upload and the named text `fields` (None when absent); optional further file
    uploads named in `files` come back as bytes (None when absent)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise bad_request("invalid_content_type", "Send the request as multipart/form-data with the "
                                                  "upload in a 'file' field.")
    try:
        form = await request.form(max_files=2, max_fields=32)
    except BodyTooLarge:
        raise
    except StarletteHTTPException as exc:
        raise bad_request("invalid_multipart", f"The multipart body could not be parsed ({exc.detail}).") from None
    except Exception as exc:
        raise bad_request("invalid_multipart", f"The multipart body could not be parsed "
                                               f"({exc.__class__.__name__}).") from None
    upload = form.get("file")
    if upload is None:
        raise bad_request("missing_file", "The 'file' field is missing: attach the media as a file "
                                          "part named 'file'.", param="file")
    if not isinstance(upload, UploadFile):
        raise bad_request("missing_file", "The 'file' field must be a file upload, not a text value.",
                          param="file")
    data = await upload.read()
    await upload.close()
    values: dict[str, Any] = {}
    for name in fields:
        v = form.get(name)
        values[name] = v if isinstance(v, str) else None
    for name in files:
        extra = form.get(name)
        if extra is not None and not isinstance(extra, UploadFile):
            raise bad_request("invalid_parameter", f"The '{name}' field must be a file upload.", param=name)
        values[name] = await extra.read() if extra is not None else None
        if extra is not None:
            await extra.close()
    return data, values


def default_slots(models_dir: Path, *, cpu_threads: int = 2, beam_size: int = 2, asr_short_window: bool = False,
                  tts: Optional[TTSEngine] = None) -> dict[str, EngineSlot]:
    """Every capability of the host with its engine (not loaded yet). `tts` replaces the default TTS engine
    (tests inject backends with faults)."""
    vad = VADEngine()
    return {
        "asr": EngineSlot("asr", ASREngine(models_dir / "whisper-base", cpu_threads=cpu_threads, beam_size=beam_size,
                                           short_window=asr_short_window, vad=vad), model_prefix="whisper-base/"),
        "vad": EngineSlot("vad", vad),
        "tts": EngineSlot("tts", tts if tts is not None else TTSEngine(models_dir / "piper")),
        "landmarks": EngineSlot("landmarks", LandmarkEngine(models_dir / "mediapipe" / "face_landmarker.task"),
                                model_prefix="mediapipe/"),
        # voice: the GE2E weights ship inside resemblyzer; its speech ratio uses the VAD
        "voice": EngineSlot("voice", VoiceEngine(vad.speech_probabilities)),
        "moderation": EngineSlot("moderation", ModerationEngine(models_dir, threads=1), required=False,
                                 model_prefix="e5-small/"),
    }


def create_app(models_dir: Path, *, cpu_threads: int = 2, beam_size: int = 2, asr_short_window: bool = False,
               max_upload: int = DEFAULT_MAX_UPLOAD, load_in_background: bool = True,
               slots: Optional[dict[str, EngineSlot]] = None) -> FastAPI:
    """The host's app. `slots` replaces the capabilities (tests: a subset, or engines with injected faults)."""
    models_dir = Path(models_dir).expanduser().resolve()
    engines = Engines(models_dir=models_dir)
    engines.slots = slots if slots is not None else default_slots(
        models_dir, cpu_threads=cpu_threads, beam_size=beam_size, asr_short_window=asr_short_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engines.started = time.monotonic()
        loader = threading.Thread(target=load_engines, args=(engines,), name="load-engines", daemon=True)
        loader.start()
        if not load_in_background:
            await run_in_threadpool(loader.join)
        try:
            yield
        finally:
            for slot in engines.slots.values():
                close = getattr(slot.engine, "close", None)
                if close:
                    try:
                        close()
                    except Exception:
                        log.exception("close failed", extra={"fields": {"engine": slot.name}})

    app = FastAPI(title="Avatar engine host", version=__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.engines = engines
    app.add_middleware(GuardMiddleware, max_body=max_upload)

    # -- error handlers -----------------------------------------------------------------------
    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError):
        if exc.status >= 500:
            log.warning("engine error", extra={"fields": {"code": exc.code, "message": exc.message}})
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return _json_error(400, "Invalid request: " + "; ".join(parts), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        msg = {404: f"No such endpoint: {request.method} {request.url.path}. See GET /docs.",
               405: f"Method {request.method} is not allowed on {request.url.path}."}.get(
            exc.status_code, str(exc.detail))
        return _json_error(exc.status_code, msg, codes.get(exc.status_code, "http_error"))

    # -- routes ---------------------------------------------------------------------------------
    @app.get("/health")
    async def health():
        # Readiness per capability: one engine that failed to load (a broken voice, a damaged model)
        # makes the host "degraded", not down; its requests answer 503 engine_unavailable while the
        # others serve. 503 only while loading, or when nothing loaded.
        slots = engines.slots
        status, code = host_status(slots)
        body: dict[str, Any] = {"status": status, "version": __version__,
                                "engines": {name: s.describe() for name, s in slots.items()},
                                "models_dir": str(engines.models_dir),
                                "uptime_s": round(time.monotonic() - engines.started, 1),
                                "ready_after_s": engines.ready_after_s}
        if engines.setup_error:
            body["error"] = engines.setup_error
        return JSONResponse(body, status_code=code)

    @app.post("/v1/moderations")
    async def moderations(request: Request):
        """Child-safety classification, shaped like OpenAI's moderations API: {"input": str | [str]}, optional
        "margin" (how much closer to unsafe examples than to ordinary ones a text must be; default MARGIN)."""
        try:
            body = await request.json()
        except BodyTooLarge:
            raise
        except Exception:
            raise bad_request("invalid_json", "Send a JSON body: {\"input\": \"text\"} or {\"input\": [\"text\", ...]}.")
        req = ModerationRequest.parse(body, max_texts=MAX_TEXTS, max_chars=MAX_CHARS, margin=MARGIN)
        engine = engines.require("moderation")
        results = await run_in_threadpool(engine.classify, req.input, req.margin)
        return JSONResponse({"model": "child-safety-e5-small-knn", "results": results})

    @app.get("/v1/voices")
    async def voices():
        tts: TTSEngine = engines.slots["tts"].engine
        return {"voices": tts.list_voices()}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        data, f = await _read_form(request, form_fields(TranscriptionForm), files=("noise",))
        asr: ASREngine = engines.require("asr")
        form = TranscriptionForm.parse(f, languages=asr.languages)
        result = await run_in_threadpool(asr.transcribe, data, language=form.language,
                                         temperature=form.temperature, prompt=form.prompt,
                                         language_candidates=form.language_candidates,
                                         denoise=form.denoise, noise=f["noise"],
                                         words=form.timestamp_granularities == "word")
        fmt = form.response_format
        if fmt == "text":
            return PlainTextResponse(result["text"])
        if fmt == "verbose_json":
            result = {"task": "transcribe", **result}
        return JSONResponse(result)

    @app.post("/v1/audio/vad")
    async def vad(request: Request):
        """Silero speech probability per 32 ms frame of the uploaded audio (any format ffmpeg reads)."""
        data, _ = await _read_form(request, ())
        vad: VADEngine = engines.require("vad")
        return JSONResponse(await run_in_threadpool(vad.speech_probabilities, data))

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        try:
            body = await request.json()
        except BodyTooLarge:
            raise
        except Exception:
            raise bad_request("invalid_json", 'The body must be JSON like {"input": "Hello", "voice": '
                                              '"slt", "response_format": "wav", "speed": 1.0}.') from None
        if not isinstance(body, dict):
            raise bad_request("invalid_json", "The JSON body must be an object.")
        tts: TTSEngine = engines.slots["tts"].engine
        req = SpeechRequest.parse(body, voices=tts.voices)
        voice, fmt, emotion, intensity = tts.voices[req.voice], req.response_format, req.emotion, req.intensity
        tts.require_voice(voice)  # 503 engine_loading / engine_unavailable (with why) for this voice only
        result = await run_in_threadpool(tts.synthesize, req.input, voice, req.speed, emotion, intensity)
        headers = {"X-Audio-Duration": f"{result.duration:.3f}", "X-Sample-Rate": str(result.sample_rate),
                   "X-Voice": voice.id, "X-Emotion": f"{emotion};intensity={intensity:g}"}
        if fmt == "verbose_json":
            # Audio (WAV, base64) with the phoneme/word timings and the prosody that was applied.
            wav = pcm_to_wav(result.pcm, result.sample_rate)
            return JSONResponse({"voice": voice.id, "language": voice.language, "engine": voice.engine,
                                 "sample_rate": result.sample_rate, "duration": round(result.duration, 3),
                                 "prosody": result.prosody.public(), "timings": result.timings,
                                 "audio": base64.b64encode(wav).decode("ascii"), "format": "wav"},
                                headers=headers)
        audio, ctype = await run_in_threadpool(tts.encode, result.pcm, result.sample_rate, fmt)
        return Response(audio, media_type=ctype, headers=headers)

    @app.post("/v1/face/landmarks")
    async def face_landmarks(request: Request):
        data, f = await _read_form(request, form_fields(LandmarksForm))
        lm: LandmarkEngine = engines.require("landmarks")
        form = LandmarksForm.parse(f)
        return JSONResponse(await run_in_threadpool(lm.detect, data, form.multiple))

    _add_voice_routes(app, engines)
    return app


def _add_voice_routes(app: FastAPI, engines: Engines) -> None:
    """Voice-sample analysis, speaker embeddings and WORLD conversion for the voice cloner (voice.py)."""

    @app.post("/v1/voice/analyze")
    async def voice_analyze(request: Request):
        data, _ = await _read_form(request, ())
        engines.require("vad")  # the speech ratio uses the Silero VAD
        voice: VoiceEngine = engines.require("voice")
        return JSONResponse(await run_in_threadpool(voice.analyze, data))

    @app.post("/v1/voice/embedding")
    async def voice_embedding(request: Request):
        data, _ = await _read_form(request, ())
        voice: VoiceEngine = engines.require("voice")
        return JSONResponse(await run_in_threadpool(voice.embedding, data))

    @app.post("/v1/voice/convert")
    async def voice_convert(request: Request):
        data, f = await _read_form(request, form_fields(VoiceConvertForm))
        voice: VoiceEngine = engines.require("voice")
        form = VoiceConvertForm.parse(f)
        audio, info = await run_in_threadpool(
            voice.convert, data, f0_log_mean=form.f0_log_mean, f0_log_std=form.f0_log_std,
            formant_ratio=form.formant_ratio, target_envelope=form.target_envelope)
        return Response(audio, media_type="audio/wav", headers={
            "X-Audio-Duration": f"{info['duration']:.3f}", "X-Sample-Rate": str(info["sample_rate"]),
            "X-Formant-Ratio": str(info["formant_ratio"]), "X-Voice-Conversion": json.dumps(info)})
