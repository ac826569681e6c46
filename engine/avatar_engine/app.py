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
from .asr import RESPONSE_FORMATS as ASR_FORMATS, ASREngine
from .errors import EngineError, INVALID_REQUEST, SERVER_ERROR, bad_request, error_body
from .landmarks import LandmarkEngine
from .moderation import MARGIN, MAX_CHARS, MAX_TEXTS, ModerationEngine
from .provision import ProvisionError, quick_check
from .tts import TTSEngine, pcm_to_wav
from .voice import VoiceEngine

log = logging.getLogger("avatar_engine.app")

DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024


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
        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        try:
            if cl is not None and int(cl) > limit:
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
@dataclass
class EngineSlot:
    name: str
    engine: Any
    status: str = "loading"  # loading | ready | error
    error: Optional[str] = None
    # An optional engine (the child-safety classifier) does not decide /health: its clients fall back without it.
    required: bool = True

    def describe(self) -> dict[str, Any]:
        d = dict(self.engine.info()) if self.engine is not None else {}
        d["ready"] = self.status == "ready"
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
        if slot.status == "ready":
            return slot.engine
        if slot.status == "loading":
            raise EngineError(503, "engine_loading", f"The {name} engine is still loading; retry when "
                                                     "GET /health reports status ok.")
        raise EngineError(503, "engine_unavailable", f"The {name} engine failed to start: {slot.error}")


# model folder prefix (as in engine/models.json) -> engine that needs it; llm/ is not the host's
ENGINE_FILES = {"asr": "whisper-base/", "tts": "piper/", "landmarks": "mediapipe/", "moderation": "e5-small/"}  # voice: weights ship in resemblyzer


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
        prefix = ENGINE_FILES.get(name)
        mine = [p for p in problems if prefix and f"/{prefix}" in p.replace("\\", "/")]
        if mine:
            slot.status = "error"
            slot.error = f"model files missing or damaged ({mine[0]}" + (
                f" and {len(mine) - 1} more" if len(mine) > 1 else "") + f"); {fix}"
        if slot.status == "error":
            blocked.append(name)
    if blocked:
        engines.setup_error = f"model files are missing or damaged for: {', '.join(blocked)}; {fix}"
        log.error("models missing", extra={"fields": {"problems": problems}})

    def load(slot: EngineSlot) -> None:
        t0 = time.monotonic()
        try:
            slot.engine.load()
            slot.status = "ready"
            log.info("engine ready", extra={"fields": {"engine": slot.name,
                                                       "seconds": round(time.monotonic() - t0, 3)}})
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
    ok = all(s.status == "ready" for s in engines.slots.values())
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


def create_app(models_dir: Path, *, cpu_threads: int = 2, beam_size: int = 2, asr_short_window: bool = False,
               max_upload: int = DEFAULT_MAX_UPLOAD, load_in_background: bool = True) -> FastAPI:
    models_dir = Path(models_dir).expanduser().resolve()
    engines = Engines(models_dir=models_dir)
    engines.slots = {
        "asr": EngineSlot("asr", ASREngine(models_dir / "whisper-base", cpu_threads=cpu_threads,
                                           beam_size=beam_size, short_window=asr_short_window)),
        "tts": EngineSlot("tts", TTSEngine(models_dir / "piper")),
        "landmarks": EngineSlot("landmarks", LandmarkEngine(models_dir / "mediapipe" / "face_landmarker.task")),
    }
    engines.slots["voice"] = EngineSlot("voice", VoiceEngine(engines.slots["asr"].engine.speech_probabilities))
    engines.slots["moderation"] = EngineSlot("moderation", ModerationEngine(models_dir, threads=1), required=False)

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
        required = [s for s in slots.values() if s.required]
        states = [s.status for s in required]
        if all(state == "ready" for state in states):
            status, code = "ok", 200
        elif "loading" in states:
            status, code = "loading", 503
        elif "ready" in states:
            status, code = "degraded", 200
        else:
            status, code = "error", 503
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
        except Exception:
            raise bad_request("invalid_json", "Send a JSON body: {\"input\": \"text\"} or {\"input\": [\"text\", ...]}.")
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise bad_request("invalid_input", "'input' must be a non-empty string or a list of strings.", param="input")
        if len(texts) > MAX_TEXTS or any(len(t) > MAX_CHARS for t in texts):
            raise bad_request("input_too_large", f"At most {MAX_TEXTS} texts of at most {MAX_CHARS} characters each.",
                              param="input")
        margin = body.get("margin", MARGIN)
        if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not -1 <= margin <= 1:
            raise bad_request("invalid_margin", "'margin' must be a number between -1 and 1.", param="margin")
        engine = engines.require("moderation")
        results = await run_in_threadpool(engine.classify, texts, float(margin))
        return JSONResponse({"model": "child-safety-e5-small-knn", "results": results})

    @app.get("/v1/voices")
    async def voices():
        tts: TTSEngine = engines.slots["tts"].engine
        return {"voices": tts.list_voices()}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        data, f = await _read_form(request, ("model", "language", "response_format", "temperature", "prompt",
                                             "language_candidates", "denoise", "timestamp_granularities[]",
                                             "timestamp_granularities"), files=("noise",))
        asr: ASREngine = engines.require("asr")
        granularity = (f["timestamp_granularities[]"] or f["timestamp_granularities"] or "segment").strip()
        if granularity not in ("segment", "word"):
            raise bad_request("invalid_parameter", "'timestamp_granularities[]' must be segment or word.",
                              param="timestamp_granularities[]")
        denoise = (f["denoise"] or "false").strip().lower()
        if denoise not in ("true", "false", "1", "0"):
            raise bad_request("invalid_parameter", "'denoise' must be true or false.", param="denoise")
        fmt = (f["response_format"] or "json").strip()
        if fmt not in ASR_FORMATS:
            raise bad_request("unsupported_format", f"response_format {fmt!r} is not supported; use one of "
                                                    + ", ".join(ASR_FORMATS) + ".", param="response_format")
        temperature = None
        if f["temperature"] not in (None, ""):
            try:
                temperature = float(f["temperature"])
            except ValueError:
                temperature = -1.0
            if not 0.0 <= temperature <= 1.0:
                raise bad_request("invalid_parameter", "'temperature' must be a number between 0 and 1.",
                                  param="temperature")
        result = await run_in_threadpool(asr.transcribe, data, language=f["language"],
                                         temperature=temperature, prompt=f["prompt"],
                                         language_candidates=f["language_candidates"],
                                         denoise=denoise in ("true", "1"), noise=f["noise"],
                                         words=granularity == "word")
        if fmt == "text":
            return PlainTextResponse(result["text"])
        if fmt == "verbose_json":
            result = {"task": "transcribe", **result}
        return JSONResponse(result)

    @app.post("/v1/audio/vad")
    async def vad(request: Request):
        """Silero speech probability per 32 ms frame of the uploaded audio (any format ffmpeg reads)."""
        data, _ = await _read_form(request, ())
        asr: ASREngine = engines.require("asr")
        return JSONResponse(await run_in_threadpool(asr.speech_probabilities, data))

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
        text, voice, speed, fmt, emotion, intensity = tts.validate(
            body.get("input"), body.get("voice"), body.get("speed"), body.get("response_format"),
            body.get("emotion"), body.get("intensity"))
        if not voice.ready:
            engines.require("tts")  # 503 engine_loading / engine_unavailable with the reason
        result = await run_in_threadpool(tts.synthesize, text, voice, speed, emotion, intensity)
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
        data, f = await _read_form(request, ("multiple",))
        lm: LandmarkEngine = engines.require("landmarks")
        multiple = (f["multiple"] or "error").strip().lower()
        return JSONResponse(await run_in_threadpool(lm.detect, data, multiple))

    _add_voice_routes(app, engines)
    return app


def _add_voice_routes(app: FastAPI, engines: Engines) -> None:
    """Voice-sample analysis, speaker embeddings and WORLD conversion for the voice cloner (voice.py)."""

    @app.post("/v1/voice/analyze")
    async def voice_analyze(request: Request):
        data, _ = await _read_form(request, ())
        engines.require("asr")  # the speech ratio uses its Silero VAD
        voice: VoiceEngine = engines.require("voice")
        return JSONResponse(await run_in_threadpool(voice.analyze, data))

    @app.post("/v1/voice/embedding")
    async def voice_embedding(request: Request):
        data, _ = await _read_form(request, ())
        voice: VoiceEngine = engines.require("voice")
        return JSONResponse(await run_in_threadpool(voice.embedding, data))

    @app.post("/v1/voice/convert")
    async def voice_convert(request: Request):
        data, f = await _read_form(request, ("f0_log_mean", "f0_log_std", "formant_ratio", "target_envelope"))
        voice: VoiceEngine = engines.require("voice")

        def number(name: str, required: bool) -> Optional[float]:
            raw = (f[name] or "").strip()
            if not raw:
                if required:
                    raise bad_request("invalid_parameter", f"'{name}' is required.", param=name)
                return None
            try:
                return float(raw)
            except ValueError:
                raise bad_request("invalid_parameter", f"'{name}' must be a number.", param=name) from None

        envelope = None
        if f["target_envelope"]:
            try:
                envelope = [float(v) for v in json.loads(f["target_envelope"])]
            except (ValueError, TypeError):
                raise bad_request("invalid_parameter", "'target_envelope' must be a JSON array of numbers.",
                                  param="target_envelope") from None
        audio, info = await run_in_threadpool(
            voice.convert, data, f0_log_mean=number("f0_log_mean", True), f0_log_std=number("f0_log_std", True),
            formant_ratio=number("formant_ratio", False), target_envelope=envelope)
        return Response(audio, media_type="audio/wav", headers={
            "X-Audio-Duration": f"{info['duration']:.3f}", "X-Sample-Rate": str(info["sample_rate"]),
            "X-Formant-Ratio": str(info["formant_ratio"]), "X-Voice-Conversion": json.dumps(info)})
