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

import numpy as np

from .errors import EngineError, bad_request, server_error
from .prosody import (EMOTIONS, Prosody, festival_ipa, level, phoneme, pitch_shift, prosody_for,
                      scale_pauses, scale_times, text_words)

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
    espeak_voice: Optional[str] = None     # espeak-ng voice name, e.g. "de"
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
    ] + [Voice(f"espeak-{code}", f"eSpeak NG {name} (robotic fallback)", code, "male", "espeak", espeak_voice=code)
         for code, name in ESPEAK_LANGUAGES]


# Fallback voices for languages no natural voice here speaks (espeak-ng: formant synthesis, robotic).
ESPEAK_LANGUAGES = [("en", "English"), ("ru", "Russian"), ("de", "German"), ("fr", "French"), ("es", "Spanish"), ("it", "Italian"),
                    ("pt", "Portuguese"), ("uk", "Ukrainian"), ("pl", "Polish"), ("tr", "Turkish")]


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
        self.alignments = bool(header.get("alignments"))

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

    def _request(self, text: str, length_scale: float, silence: float,
                 timeout: float) -> tuple[bytes, int, Optional[list]]:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        proc = self.proc
        proc.stdin.write((json.dumps({"text": text, "length_scale": length_scale,
                                      "sentence_silence": silence}) + "\n").encode())
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
        return pcm, int(header["sample_rate"]), header.get("phonemes")

    def synthesize(self, text: str, speed: float, silence: float = 0.25) -> tuple[bytes, int, Optional[list]]:
        """(PCM, rate, [[ipa, start_sample, end_sample, word_index], ...] or None)."""
        length_scale = self.base_length_scale / speed
        timeout = 30.0 + len(text) * 0.2
        with self._lock:
            try:
                return self._request(text, length_scale, silence, timeout)
            except (RuntimeError, BrokenPipeError, OSError, json.JSONDecodeError) as exc:
                log.warning("piper worker failed, restarting", extra={"fields": {"error": str(exc)}})
                self.start()
                return self._request(text, length_scale, silence, timeout)


# ---------------------------------------------------------------------------------------------
class EspeakEngine:
    """libespeak-ng through ctypes: synchronous synthesis whose callback also delivers word and
    phoneme events (IPA) with their audio positions -- real timings, not estimates."""

    EVENT_END_OF_LIST, EVENT_WORD, EVENT_PHONEME = 0, 1, 7
    DEFAULT_WPM = 175

    def __init__(self) -> None:
        import ctypes
        import ctypes.util
        self.ct = ctypes
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)

        class _Id(ctypes.Union):
            _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

        class _Event(ctypes.Structure):
            _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                        ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                        ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                        ("user_data", ctypes.c_void_p), ("id", _Id)]

        self._callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                               ctypes.POINTER(_Event))
        # AUDIO_OUTPUT_SYNCHRONOUS; phoneme events as IPA; don't exit() on errors.
        self.sample_rate = int(self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x0002 | 0x8000))
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise (is espeak-ng-data installed?)")
        self._pcm: list[bytes] = []
        self._events: list[tuple] = []
        self._callback = self._callback_type(self._on_audio)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._pcm.append(self.ct.string_at(wav, n * 2))
        i = 0
        while events[i].type != self.EVENT_END_OF_LIST:
            e = events[i]
            if e.type == self.EVENT_PHONEME:
                self._events.append(("P", e.id.string.decode("utf-8", "replace"), e.audio_position / 1000.0))
            elif e.type == self.EVENT_WORD:
                self._events.append(("W", (e.text_position, e.length), e.audio_position / 1000.0))
            i += 1
        return 0

    def synthesize(self, voice: Voice, text: str, speed: float) -> tuple[bytes, int, Optional[dict]]:
        data = text.encode("utf-8")
        with self.lock:
            self._pcm, self._events = [], []
            if self.lib.espeak_SetVoiceByName(voice.espeak_voice.encode()) != 0:
                raise server_error("tts_failed", f"espeak-ng has no voice {voice.espeak_voice!r}.")
            self.lib.espeak_SetParameter(1, int(round(self.DEFAULT_WPM * speed)), 0)  # espeakRATE
            # espeak_Synth(text, size, position, POS_CHARACTER, end, espeakCHARS_UTF8, NULL, NULL)
            status = self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)
            self.lib.espeak_Synchronize()
            pcm, events = b"".join(self._pcm), self._events
        if status != 0:
            raise server_error("tts_failed", f"espeak-ng failed (status {status}).")
        duration = len(pcm) / 2 / self.sample_rate
        phonemes, words = [], []
        marks = [e for e in events if e[0] == "P"] + [("P", "", duration)]
        for (_, ipa, start), (_, _, end) in zip(marks, marks[1:]):
            if end <= start:
                continue
            if not ipa and phonemes and not phonemes[-1]["ipa"]:
                phonemes[-1]["end"] = round(end, 4)
            else:
                phonemes.append(phoneme(ipa, ipa, start, end))
        word_marks = [e for e in events if e[0] == "W"]
        for i, (_, (pos, length), start) in enumerate(word_marks):
            end = word_marks[i + 1][2] if i + 1 < len(word_marks) else duration
            spoken = [p for p in phonemes if p["ipa"] and start <= p["start"] < end]
            if spoken:
                end = spoken[-1]["end"]
            chars = data[max(0, pos - 1):max(0, pos - 1) + length].decode("utf-8", "replace").strip()
            if not chars or not any(ch.isalnum() for ch in chars):
                continue
            if words:  # the word event comes a few ms before the previous word's last phoneme ends
                start = max(start, words[-1]["end"])
            words.append({"text": chars, "start": round(start, 4), "end": round(max(start, end), 4)})
        timings = {"source": "espeak-events", "phonemes": phonemes, "words": words} if phonemes else None
        return pcm, self.sample_rate, timings


def piper_timings(items: Optional[list], sr: int, text: str) -> Optional[dict]:
    if not items:
        return None
    phonemes = [phoneme(ipa, ipa, a / sr, b / sr) for ipa, a, b, _ in items]
    groups: dict[int, list] = {}
    for ipa, a, b, w in items:
        if w >= 0 and ipa:
            groups.setdefault(w, []).append((a / sr, b / sr, ipa))
    names = text_words(text)
    ordered = [groups[k] for k in sorted(groups)]
    words = [{"text": names[i] if len(names) == len(ordered) else "".join(x[2] for x in g),
              "start": round(g[0][0], 4), "end": round(g[-1][1], 4)} for i, g in enumerate(ordered)]
    return {"source": "piper-alignment", "phonemes": phonemes, "words": words}


@dataclass
class Synthesis:
    pcm: bytes
    sample_rate: int
    timings: Optional[dict]
    prosody: Prosody

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


# ---------------------------------------------------------------------------------------------
class TTSEngine:
    def __init__(self, piper_dir: Path) -> None:
        self.piper_dir = Path(piper_dir)
        self.voices: dict[str, Voice] = {v.id: v for v in default_voices()}
        self.piper: Optional[PiperProcess] = None
        self.load_seconds: Optional[float] = None
        self._festival_sem = threading.Semaphore(2)
        self.espeak: Optional[EspeakEngine] = None

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
                    _, sr, _ = self._festival(v, "Да." if v.language == "ru" else "Ready.", 1.0)
                    v.sample_rate, v.ready = sr, True
                except Exception as exc:
                    v.error = f"Festival voice {v.id} failed: {getattr(exc, 'message', exc)}"
                    errors.append(v.error)
        # espeak-ng fallback voices (their absence does not make the engine unready).
        try:
            self.espeak = EspeakEngine()
            for v in self.voices.values():
                if v.engine == "espeak":
                    v.sample_rate, v.ready = self.espeak.sample_rate, True
        except Exception as exc:
            for v in self.voices.values():
                if v.engine == "espeak":
                    v.error = f"espeak-ng is not available ({exc}); apt-get install espeak-ng"
        self.load_seconds = round(time.monotonic() - t0, 3)
        if errors:
            raise RuntimeError("; ".join(errors))

    def close(self) -> None:
        if self.piper is not None:
            self.piper.stop()

    def info(self) -> dict[str, Any]:
        return {"ready": all(v.ready for v in self.voices.values() if v.engine != "espeak"),
                "voices": {v.id: {"ready": v.ready, "engine": v.engine, **({"error": v.error} if v.error else {})}
                           for v in self.voices.values()},
                "load_seconds": self.load_seconds}

    def list_voices(self) -> list[dict[str, Any]]:
        return [v.public() for v in self.voices.values()]

    # -- synthesis ------------------------------------------------------------------------------
    def _festival(self, voice: Voice, text: str, speed: float) -> tuple[bytes, int, Optional[dict]]:
        """Festival in batch mode with a Scheme script: the utterance's WAV plus its segment (phone)
        and word times, written by Festival itself."""
        with tempfile.TemporaryDirectory(prefix="avatar-tts-") as td:
            out, segs = Path(td) / "out.wav", Path(td) / "segs.txt"
            safe = festival_text(text, voice.language)
            if not re.search(r"\w", safe):
                raise bad_request("empty_input", f"The input contains nothing voice {voice.id} can speak "
                                                 f"(it speaks {voice.language}).", param="input")
            rate = ""
            if voice.festival_speed == "hts" and abs(speed - 1.0) > 1e-3:
                # Festival's Duration_Stretch is ignored by HTS/clunits voices; HTS takes -r (rate).
                rate = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed:.3f}))))'
            quoted = safe.replace("\\", " ").replace('"', " ")
            script = Path(td) / "say.scm"
            script.write_text(f"""({voice.festival_voice})
{rate}
(set! utt (SynthText "{quoted}"))
(utt.save.wave utt "{out}" 'riff)
(set! fd (fopen "{segs}" "w"))
(mapcar (lambda (s) (format fd "S %s %f\\n" (item.name s) (item.feat s "end"))) (utt.relation.items utt 'Segment))
(mapcar (lambda (w) (format fd "W %f %f %s\\n" (item.feat w "word_start") (item.feat w "word_end") (item.name w)))
        (utt.relation.items utt 'Word))
(fclose fd)
""", encoding="utf-8")
            cmd = ["festival", "-b", str(script)]
            timeout = 30.0 + len(text) * 0.2
            with self._festival_sem:
                try:
                    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          timeout=timeout, check=False)
                except subprocess.TimeoutExpired:
                    raise server_error("tts_failed", f"Festival took longer than {timeout:.0f} s; "
                                                     "send shorter text.") from None
                stderr = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
                # festival exits 0 even when a letter-to-sound rule aborts the utterance.
                if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44 \
                        or "no rule matches" in stderr or "SIOD ERROR" in stderr:
                    detail = [line for line in stderr.splitlines() if line.strip()]
                    raise server_error("tts_failed", f"Festival ({voice.id}) could not synthesise this text ("
                                       + (detail[-1][:200] if detail else f"exit {proc.returncode}")
                                       + "). Remove unusual symbols and retry.")
                timings = self._festival_timings(segs, voice.language, safe)
                if voice.festival_speed == "sox" and abs(speed - 1.0) > 1e-3:
                    fast = Path(td) / "tempo.wav"
                    sp = subprocess.run(["sox", str(out), str(fast), "tempo", "-s", f"{speed:.3f}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
                    if sp.returncode != 0:
                        raise server_error("tts_failed", "sox failed to change the speaking rate ("
                                           + sp.stderr.decode("utf-8", "replace").strip()[:200] + ").")
                    out = fast
                    if timings is not None:
                        scale_times(timings, 1 / speed, 1e9)
            try:
                pcm, sr = read_wav_mono16(out)
            except (EOFError, wave.Error, ValueError) as exc:
                raise server_error("tts_failed", f"Festival ({voice.id}) produced an unreadable WAV ({exc}). "
                                                 "Remove unusual symbols and retry.") from None
            if timings is not None:
                scale_times(timings, 1.0, len(pcm) / 2 / sr)
            return pcm, sr, timings

    @staticmethod
    def _festival_timings(path: Path, language: str, text: str) -> Optional[dict]:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        phonemes, words, start = [], [], 0.0
        names = text_words(text)
        for line in lines:
            parts = line.split(" ", 3)
            try:
                if parts[0] == "S" and len(parts) >= 3:
                    end = float(parts[2])
                    ipa = festival_ipa(parts[1], language)
                    if not ipa and phonemes and not phonemes[-1]["ipa"]:
                        phonemes[-1]["end"] = round(end, 4)
                    elif end > start:
                        phonemes.append(phoneme(ipa, parts[1], start, end))
                    start = max(start, end)
                elif parts[0] == "W" and len(parts) >= 4:
                    words.append({"text": parts[3], "start": round(float(parts[1]), 4),
                                  "end": round(float(parts[2]), 4)})
            except ValueError:
                continue
        if not phonemes:
            return None
        if len(words) == len(names):  # Festival's token names are normalised: show the text's own words
            for w, name in zip(words, names):
                w["text"] = name
        return {"source": "festival-segments", "phonemes": phonemes, "words": words}

    def validate(self, text: Any, voice_id: Any, speed: Any, response_format: Any,
                 emotion: Any = None, intensity: Any = None) -> tuple[str, Voice, float, str, str, float]:
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
        if not isinstance(fmt, str) or (fmt not in RESPONSE_FORMATS and fmt != "verbose_json"):
            raise bad_request("unsupported_format", f"response_format {fmt!r} is not supported; use one of "
                                                    + ", ".join([*RESPONSE_FORMATS, "verbose_json"]) + ".",
                              param="response_format")
        emotion = "neutral" if emotion is None else emotion
        if not isinstance(emotion, str) or emotion not in EMOTIONS:
            raise bad_request("unknown_emotion", f"Unknown emotion {emotion!r}; use one of "
                                                 + ", ".join(EMOTIONS) + ".", param="emotion")
        try:
            intensity = (0.0 if emotion == "neutral" else 0.7) if intensity is None else float(intensity)
        except (TypeError, ValueError):
            raise bad_request("invalid_intensity", "'intensity' must be a number from 0 to 1.",
                              param="intensity") from None
        if not (0.0 <= intensity <= 1.0):
            raise bad_request("invalid_intensity", f"'intensity' {intensity} is out of range; use 0 (none) "
                                                   "to 1 (strongest).", param="intensity")
        return text, voice, speed, fmt, emotion, intensity

    def synthesize(self, text: str, voice: Voice, speed: float, emotion: str = "neutral",
                   intensity: float = 0.0) -> Synthesis:
        """Blocking: speech with the emotion's prosody, and its phoneme/word timings when the engine
        gives them."""
        if not voice.ready:
            raise EngineError(503, "engine_not_ready", f"Voice {voice.id} is not available: "
                                                       f"{voice.error or 'still loading'}.")
        prosody = prosody_for(emotion, intensity)
        rate = max(MIN_SPEED, min(MAX_SPEED, speed * prosody.rate))
        try:
            if voice.engine == "piper":
                pcm, sr, items = self.piper.synthesize(text, rate)
                timings = piper_timings(items, sr, text)
            elif voice.engine == "espeak":
                pcm, sr, timings = self.espeak.synthesize(voice, text, rate)
            else:
                pcm, sr, timings = self._festival(voice, text, rate)
            x = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
            if len(x) / sr >= 0.15:
                x = scale_pauses(x, sr, timings, prosody.pause_scale)
                x = pitch_shift(x, sr, prosody.semitones)
                x = level(x, prosody.gain_db)
                if timings is not None:
                    scale_times(timings, 1.0, len(x) / sr)
            pcm = x.astype("<i2").tobytes()
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
        return Synthesis(pcm, sr, timings, prosody)

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
