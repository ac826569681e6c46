"""Text to speech: Piper (en_US-joe-medium, in a worker process) and Festival (slt, msu_ru_nsh)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import EngineError, bad_request, server_error

log = logging.getLogger("avatar_engine.tts")

MAX_INPUT_CHARS = 4096
MIN_SPEED, MAX_SPEED = 0.25, 4.0
PIPER_VOICE_ID = "en_US-joe-medium"

# response_format -> (content type, ffmpeg output args or None for native handling)
RESPONSE_FORMATS: dict[str, tuple[str, Optional[list[str]]]] = {
    "wav": ("audio/wav", None),
    "pcm": ("audio/L16", None),
    "mp3": ("audio/mpeg", ["-f", "mp3", "-c:a", "libmp3lame", "-b:a", "64k"]),
    "opus": ("audio/ogg", ["-f", "ogg", "-c:a", "libopus", "-b:a", "32k"]),
    "flac": ("audio/flac", ["-f", "flac"]),
}


@dataclass
class Voice:
    id: str
    name: str
    language: str
    gender: str
    engine: str
    festival_voice: Optional[str] = None  # festival voice function, e.g. voice_cmu_us_slt_arctic_hts
    festival_speed: str = "none"           # "hts" (engine rate) | "sox" (tempo post-processing)
    sample_rate: Optional[int] = None
    ready: bool = False
    error: Optional[str] = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "language": self.language, "gender": self.gender,
                "engine": self.engine, "sample_rate": self.sample_rate}


def default_voices() -> list[Voice]:
    return [
        Voice(PIPER_VOICE_ID, "Joe (US English, Piper medium)", "en", "male", "piper"),
        Voice("slt", "SLT (US English, Festival HTS)", "en", "female", "festival",
              festival_voice="voice_cmu_us_slt_arctic_hts", festival_speed="hts"),
        Voice("msu_ru_nsh", "NSh (Russian, Festival clunits)", "ru", "male", "festival",
              festival_voice="voice_msu_ru_nsh_clunits", festival_speed="sox"),
    ]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()


_RU_SYMBOLS = {"%": " процентов ", "&": " и ", "+": " плюс ", "=": " равно ", "@": " собака ",
               "№": " номер ", "$": " долларов ", "€": " евро ", "₽": " рублей "}
_RU_PUNCT = ".,!?;:"


def _char_class(ch: str) -> str:
    if "\u0400" <= ch <= "\u04ff":
        return "cyr"
    if ch.isascii() and ch.isalpha():
        return "lat"
    if ch.isascii() and ch.isdigit():
        return "dig"
    return "other"


def _ru_word(core: str) -> str:
    """Letters/digits only; hyphen kept between letters; spaces where the script changes."""
    out, prev = [], ""
    for i, ch in enumerate(core):
        cls = _char_class(ch)
        if cls == "other":
            if ch == "-" and 0 < i < len(core) - 1 and _char_class(core[i - 1]) == _char_class(core[i + 1]) == "cyr":
                out.append("-")
                continue
            if ch.isalpha():  # accented Latin (Ç, é) -> base letter
                base = unicodedata.normalize("NFKD", ch)[0]
                if base.isascii() and base.isalpha():
                    ch, cls = base, "lat"
            if cls == "other":
                out.append(" ")
                prev = ""
                continue
        if prev and cls != prev:
            out.append(" ")
        out.append(ch)
        prev = cls
    return " ".join("".join(out).split())


def festival_text(text: str, language: str) -> str:
    """Make text safe for Festival.  The Russian voice's letter-to-sound rules abort (and leave a
    broken WAV) on anything they do not know: emoji, «quotes», dashes, '%', '3.5', 'т.д.', a
    punctuation mark standing alone.  For ru we keep words of Cyrillic, Latin or digits, each with
    optional trailing . , ! ? ; : ."""
    text = unicodedata.normalize("NFKC", text)
    if language != "ru":
        return text
    text = re.sub(r"(\d)[.,](\d)", r"\1 запятая \2", text)
    text = text.replace("…", "...")
    text = "".join(_RU_SYMBOLS.get(ch, ch) for ch in text)
    text = re.sub(r"(^|\s)[-–—]+(?=\s|$)", r"\1, ", text)  # dash between words = pause
    words: list[str] = []
    for token in text.split():
        m = re.match(r"^(.*?)([" + re.escape(_RU_PUNCT) + r"\"'»)\]]*)$", token)
        core, tail = m.group(1), re.sub(r"[^" + re.escape(_RU_PUNCT) + "]", "", m.group(2))
        word = _ru_word(core)
        if word:
            words.append(word + tail[:3])
        elif tail and words and words[-1][-1] not in _RU_PUNCT:
            words[-1] += tail[:3]
    return " ".join(words)


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


# ---------------------------------------------------------------------------------------------
class PiperProcess:
    """Owns the Piper worker process; restarts it once if it died."""

    def __init__(self, model: Path, config: Path) -> None:
        self.model, self.config = model, config
        self.proc: Optional[subprocess.Popen] = None
        self.sample_rate: Optional[int] = None
        self.base_length_scale = 1.0
        self._lock = threading.Lock()

    def start(self, timeout: float = 120.0) -> None:
        self.stop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avatar_engine.piper_worker", "--model", str(self.model),
             "--config", str(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env)
        header = self._read_header(timeout)
        if not header.get("ready"):
            raise RuntimeError(f"piper worker did not start: {header}")
        self.sample_rate = int(header["sample_rate"])
        self.base_length_scale = float(header.get("length_scale") or 1.0)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _read_header(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None
        proc = self.proc
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            raise RuntimeError(f"piper worker exited (status {proc.poll()})")
        return json.loads(line)

    def _request(self, text: str, length_scale: float, timeout: float) -> tuple[bytes, int]:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        proc = self.proc
        proc.stdin.write((json.dumps({"text": text, "length_scale": length_scale}) + "\n").encode())
        proc.stdin.flush()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"piper worker exited (status {proc.poll()})")
            header = json.loads(line)
            if not header.get("ok"):
                raise ValueError(header.get("error", "unknown piper error"))
            n = int(header["nbytes"])
            pcm = proc.stdout.read(n) if n else b""
            if len(pcm) != n:
                raise RuntimeError("piper worker closed the stream mid-response")
        finally:
            timer.cancel()
        return pcm, int(header["sample_rate"])

    def synthesize(self, text: str, speed: float) -> tuple[bytes, int]:
        length_scale = self.base_length_scale / speed
        timeout = 30.0 + len(text) * 0.2
        with self._lock:
            try:
                return self._request(text, length_scale, timeout)
            except (RuntimeError, BrokenPipeError, OSError, json.JSONDecodeError) as exc:
                log.warning("piper worker failed, restarting", extra={"fields": {"error": str(exc)}})
                self.start()
                return self._request(text, length_scale, timeout)


# ---------------------------------------------------------------------------------------------
class TTSEngine:
    def __init__(self, piper_dir: Path) -> None:
        self.piper_dir = Path(piper_dir)
        self.voices: dict[str, Voice] = {v.id: v for v in default_voices()}
        self.piper: Optional[PiperProcess] = None
        self.load_seconds: Optional[float] = None
        self._festival_sem = threading.Semaphore(2)

    # -- lifecycle ------------------------------------------------------------------------------
    def load(self) -> None:
        t0 = time.monotonic()
        errors = []
        # Piper (worker process; loads the ONNX voice and warms it up)
        v = self.voices[PIPER_VOICE_ID]
        try:
            self.piper = PiperProcess(self.piper_dir / f"{PIPER_VOICE_ID}.onnx",
                                      self.piper_dir / f"{PIPER_VOICE_ID}.onnx.json")
            self.piper.start()
            v.sample_rate, v.ready = self.piper.sample_rate, True
        except Exception as exc:
            v.error = f"Piper voice failed to load: {exc}"
            errors.append(v.error)
        # Festival voices: synthesise a word to prove the voice is installed and learn its rate.
        if shutil.which("text2wave") is None:
            for v in self.voices.values():
                if v.engine == "festival":
                    v.error = "Festival is not installed (apt-get install festival festvox-us-slt-hts festvox-ru)"
                    errors.append(v.error)
        else:
            for v in self.voices.values():
                if v.engine != "festival":
                    continue
                try:
                    _, sr = self._festival(v, "Да." if v.language == "ru" else "Ready.", 1.0)
                    v.sample_rate, v.ready = sr, True
                except Exception as exc:
                    v.error = f"Festival voice {v.id} failed: {getattr(exc, 'message', exc)}"
                    errors.append(v.error)
        self.load_seconds = round(time.monotonic() - t0, 3)
        if errors:
            raise RuntimeError("; ".join(errors))

    def close(self) -> None:
        if self.piper is not None:
            self.piper.stop()

    def info(self) -> dict[str, Any]:
        return {"ready": all(v.ready for v in self.voices.values()),
                "voices": {v.id: {"ready": v.ready, "engine": v.engine, **({"error": v.error} if v.error else {})}
                           for v in self.voices.values()},
                "load_seconds": self.load_seconds}

    def list_voices(self) -> list[dict[str, Any]]:
        return [v.public() for v in self.voices.values()]

    # -- synthesis ------------------------------------------------------------------------------
    def _festival(self, voice: Voice, text: str, speed: float) -> tuple[bytes, int]:
        with tempfile.TemporaryDirectory(prefix="avatar-tts-") as td:
            txt, out = Path(td) / "in.txt", Path(td) / "out.wav"
            safe = festival_text(text, voice.language)
            if not re.search(r"\w", safe):
                raise bad_request("empty_input", f"The input contains nothing voice {voice.id} can speak "
                                                 f"(it speaks {voice.language}).", param="input")
            txt.write_text(safe + "\n", encoding="utf-8")
            cmd = ["text2wave", "-o", str(out), "-eval", f"({voice.festival_voice})"]
            if voice.festival_speed == "hts" and abs(speed - 1.0) > 1e-3:
                # Festival's Duration_Stretch is ignored by HTS/clunits voices; HTS takes -r (rate).
                cmd += ["-eval", f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed:.3f}))))']
            cmd.append(str(txt))
            timeout = 30.0 + len(text) * 0.2
            with self._festival_sem:
                try:
                    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          timeout=timeout, check=False)
                except subprocess.TimeoutExpired:
                    raise server_error("tts_failed", f"Festival took longer than {timeout:.0f} s; "
                                                     "send shorter text.") from None
                stderr = proc.stderr.decode("utf-8", "replace").strip()
                # text2wave exits 0 even when a letter-to-sound rule aborts the utterance.
                if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44 \
                        or "no rule matches" in stderr:
                    detail = stderr.splitlines()
                    raise server_error("tts_failed", f"Festival ({voice.id}) could not synthesise this text ("
                                       + (detail[-1][:200] if detail else f"exit {proc.returncode}")
                                       + "). Remove unusual symbols and retry.")
                if voice.festival_speed == "sox" and abs(speed - 1.0) > 1e-3:
                    fast = Path(td) / "tempo.wav"
                    sp = subprocess.run(["sox", str(out), str(fast), "tempo", "-s", f"{speed:.3f}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
                    if sp.returncode != 0:
                        raise server_error("tts_failed", "sox failed to change the speaking rate ("
                                           + sp.stderr.decode("utf-8", "replace").strip()[:200] + ").")
                    out = fast
            try:
                return read_wav_mono16(out)
            except (EOFError, wave.Error, ValueError) as exc:
                raise server_error("tts_failed", f"Festival ({voice.id}) produced an unreadable WAV ({exc}). "
                                                 "Remove unusual symbols and retry.") from None

    def validate(self, text: Any, voice_id: Any, speed: Any, response_format: Any) -> tuple[str, Voice, float, str]:
        if not isinstance(text, str) or not clean_text(text):
            raise bad_request("empty_input", "'input' is empty: send the text to speak.", param="input")
        text = clean_text(text)
        if len(text) > MAX_INPUT_CHARS:
            raise bad_request("input_too_long", f"'input' has {len(text)} characters; the limit is "
                                                f"{MAX_INPUT_CHARS}. Split the text into several requests.",
                              param="input")
        valid = ", ".join(self.voices)
        if not isinstance(voice_id, str) or voice_id not in self.voices:
            raise bad_request("unknown_voice", f"Unknown voice {voice_id!r}. Valid voices: {valid} "
                                               "(see GET /v1/voices).", param="voice")
        voice = self.voices[voice_id]
        try:
            speed = 1.0 if speed is None else float(speed)
        except (TypeError, ValueError):
            raise bad_request("invalid_speed", f"'speed' must be a number between {MIN_SPEED} and "
                                               f"{MAX_SPEED}.", param="speed") from None
        if not (MIN_SPEED <= speed <= MAX_SPEED):
            raise bad_request("invalid_speed", f"'speed' {speed} is out of range; use a value between "
                                               f"{MIN_SPEED} and {MAX_SPEED} (1.0 = normal).", param="speed")
        fmt = (response_format or "wav")
        if not isinstance(fmt, str) or fmt not in RESPONSE_FORMATS:
            raise bad_request("unsupported_format", f"response_format {fmt!r} is not supported; use one of "
                                                    + ", ".join(RESPONSE_FORMATS) + ".", param="response_format")
        return text, voice, speed, fmt

    def synthesize(self, text: str, voice: Voice, speed: float) -> tuple[bytes, int]:
        """Blocking: returns (s16le mono PCM, sample_rate)."""
        if not voice.ready:
            raise EngineError(503, "engine_not_ready", f"Voice {voice.id} is not available: "
                                                       f"{voice.error or 'still loading'}.")
        try:
            if voice.engine == "piper":
                pcm, sr = self.piper.synthesize(text, speed)
            else:
                pcm, sr = self._festival(voice, text, speed)
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
        return pcm, sr

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
