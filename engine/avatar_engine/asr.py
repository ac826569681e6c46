"""Speech recognition: faster-whisper, Whisper base multilingual (CTranslate2, int8 on CPU)."""

from __future__ import annotations

import logging
import math
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import EngineError, bad_request, server_error

log = logging.getLogger("avatar_engine.asr")

SAMPLE_RATE = 16000
MODEL_NAME = "whisper-base-int8"
RESPONSE_FORMATS = ("json", "verbose_json", "text")


SHORT_WINDOW_MIN_S = 8


def short_window(samples: int, rate: int = 16000) -> Optional[int]:
    """Encoder window (mel frames, 100/s) for a clip: its length + 1 s, in 1 s steps, at least 8 s;
    None (the full 30 s) for clips over 25 s.

    At least 8 s: with 3 s windows Whisper base looped on 1-2 s sentences ("Сегодня тёплый
    солнечный день, сегодня тёплый, солн…"); with 8 s, 18 synthesised sentences and the LibriVox
    clips came out as with the 30 s window but one English word, in 38 % of its time
    (scripts/asr_experiments.py window, docs/speech.md)."""
    seconds = samples / rate
    if seconds > 25:
        return None
    return int(max(SHORT_WINDOW_MIN_S, math.ceil(seconds + 1)) * 100)


def looks_looped(segments: list, max_new_tokens: int) -> bool:
    """Whether a decode may have gone round in a loop: it used up its token cap, or a pair of words
    comes twice ("сегодня тёплый солнечный день, сегодня тёплый, солн"). A false alarm costs one
    more decode with the full window, which gives the same words."""
    if sum(len(getattr(seg, "tokens", ()) or ()) for seg in segments) >= max_new_tokens - 2:
        return True
    words = [w.strip(".,!?;:…\"'«»").lower() for seg in segments for w in seg.text.split()]
    words = [w for w in words if w]
    pairs = list(zip(words, words[1:]))
    return len(set(pairs)) < len(pairs)


FFMPEG_TIMEOUT_S = 120
VAD_FRAME = 512  # Silero's frame at 16 kHz (32 ms)


NOISE_PROFILE_MIN_S = 0.25   # less non-speech than this is no usable noise profile
NOISE_PROFILE_MAX_S = 3.0
NOISE_FRAME_SPEECH_MAX = 0.3  # Silero probability below which a 32 ms frame is background only


def reduce_noise(audio: np.ndarray, profile: Optional[np.ndarray], source: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Stationary spectral gating (noisereduce) with a noise profile: per-frequency thresholds
    learned from background-only audio, applied to the whole clip; gated bins are lowered by 80 %.

    Measured on the LibriVox clips + colobot machine noise at 5 dB SNR, 5 noise offsets, Whisper base
    (scripts/asr_experiments.py denoise, docs/speech.md): off 14.9 %; non-stationary gating without a
    profile (the earlier method) 18.9 %; this gate with a 1 s profile of the background 12.7 %; the
    same at 100 % 18.0 %. Whisper is trained on noisy speech: gentle removal of the steady noise
    helps it, aggressive removal leaves artefacts that hurt it more than the noise."""
    import noisereduce

    info = {"method": "spectral-gating-stationary", "profile": source,
            "profile_seconds": round(len(profile) / SAMPLE_RATE, 3) if profile is not None else 0.0}
    if profile is None or len(audio) < SAMPLE_RATE // 4:
        info["applied"] = False
        return audio, info
    cleaned = noisereduce.reduce_noise(y=audio, y_noise=profile, sr=SAMPLE_RATE, stationary=True,
                                       prop_decrease=0.8, n_jobs=1)
    info["applied"] = True
    return np.asarray(cleaned, dtype=np.float32), info


def _plain_wav_16k_mono(data: bytes) -> Optional[np.ndarray]:
    """The samples of a canonical 16-bit 16 kHz mono PCM WAV (what the streaming recognizer sends),
    read without starting ffmpeg (~30 ms saved per call); None for anything else."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:16] != b"WAVEfmt ":
        return None
    fmt, channels, rate = struct.unpack_from("<HHI", data, 20)
    bits = struct.unpack_from("<H", data, 34)[0]
    if (fmt, channels, rate, bits) != (1, 1, SAMPLE_RATE, 16) or data[36:40] != b"data":
        return None
    size = min(struct.unpack_from("<I", data, 40)[0], len(data) - 44)
    if size < 2:
        return None
    return np.frombuffer(data, dtype="<i2", count=size // 2, offset=44).astype(np.float32) / 32768.0


def decode_audio(data: bytes, *, ffmpeg: str = "ffmpeg", field: str = "file") -> np.ndarray:
    """Decode any container/codec ffmpeg understands to mono float32 at 16 kHz.

    The upload goes through a temporary file rather than a pipe so that formats needing a
    seekable input (MP4/M4A with the index at the end, some WebM) decode too.
    """
    if not data:
        raise bad_request("empty_input", f"The uploaded audio ('{field}') is empty (0 bytes). "
                                         f"Record some audio and send it as the '{field}' field.",
                          param=field)
    pcm16 = _plain_wav_16k_mono(data)
    if pcm16 is not None:
        return pcm16
    with tempfile.NamedTemporaryFile(prefix="avatar-asr-", suffix=".bin") as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", tmp.name,
               "-vn", "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(SAMPLE_RATE),
               "pipe:1"]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=FFMPEG_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise server_error("ffmpeg_missing", "ffmpeg is not installed on the engine host; "
                                                 "install it (apt-get install ffmpeg).") from None
        except subprocess.TimeoutExpired:
            raise bad_request("unsupported_media",
                              f"Decoding the audio took longer than {FFMPEG_TIMEOUT_S} s; send a "
                              "shorter clip or a plain WAV/MP3/OGG/WebM/FLAC/M4A file.",
                              param=field) from None
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail_txt = detail[-1].replace(tmp.name + ": ", "").replace(tmp.name, "input")[:200] \
            if detail else f"exit status {proc.returncode}"
        raise bad_request("unsupported_media",
                          f"The uploaded '{field}' could not be decoded as audio "
                          f"(ffmpeg: {detail_txt}). Send WAV, MP3, OGG/Opus, WebM, FLAC or M4A audio.",
                          param=field)
    pcm = proc.stdout
    if len(pcm) < 2:
        raise bad_request("empty_input", "The uploaded audio decodes to no samples (zero length). "
                                         "Send a recording that contains audio.", param=field)
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float32) / 32768.0


class ASREngine:
    def __init__(self, model_dir: Path, *, cpu_threads: int, beam_size: int = 2,
                 short_window: bool = False, vad: Optional["VADEngine"] = None) -> None:
        self.short_window = short_window
        self.retried_full_window = 0  # short-window decodes that looped and were redone with 30 s
        self.model_dir = Path(model_dir)
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.model = None
        self.languages: frozenset[str] = frozenset()
        self.load_seconds: Optional[float] = None
        self._lock = threading.Lock()  # one inference at a time: predictable latency on few cores
        # Silero VAD (its own capability in the host, which loads it; standalone, load() loads it): the
        # denoiser's noise profile uses its non-speech frames.
        from .vad import VADEngine
        self._owns_vad = vad is None
        self.vad = VADEngine() if vad is None else vad

    # -- lifecycle ------------------------------------------------------------------------------
    def load(self) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        class _ReusingWhisperModel(WhisperModel):
            """Re-uses the encoder pass of our language detection for the first 30 s window.

            faster-whisper encodes the first window twice when the language is unknown (once to
            detect it, once to decode).  We detect it ourselves and hand the encoder output back
            when transcribe() asks for exactly the same features (verified by array_equal).
            """

            preencoded = None
            # Mel frames the encoder sees (None: Whisper's full 30 s window). CTranslate2 runs the
            # encoder on a shorter input; the padding after the speech is silence, so cutting it
            # gives the same tokens for short utterances at a fraction of the cost.
            window_frames = None

            def encode(self, features):  # type: ignore[override]
                pre = self.preencoded
                if pre is not None and features.shape == pre[0].shape and np.array_equal(features, pre[0]):
                    return pre[1]
                if self.window_frames is not None and features.shape[-1] > self.window_frames:
                    features = np.ascontiguousarray(features[..., : self.window_frames])
                return super().encode(features)

        t0 = time.monotonic()
        self.model = _ReusingWhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                          cpu_threads=self.cpu_threads, num_workers=1,
                                          local_files_only=True)
        self.languages = frozenset(_LANGUAGE_CODES)
        if self._owns_vad and self.vad.model is None:
            self.vad.load()
        # Warm-up: first call allocates buffers; do it now instead of in the first request.
        self._run(np.zeros(SAMPLE_RATE // 2, dtype=np.float32), language="en", temperature=None,
                  prompt=None)
        self.load_seconds = round(time.monotonic() - t0, 3)

    def info(self) -> dict[str, Any]:
        return {"ready": self.model is not None, "model": MODEL_NAME, "device": "cpu",
                "compute_type": "int8", "cpu_threads": self.cpu_threads,
                "beam_size": self.beam_size, "window": "short" if self.short_window else "full",
                "retried_full_window": self.retried_full_window,
                "load_seconds": self.load_seconds}

    # -- inference ------------------------------------------------------------------------------
    def validate_language(self, language: Optional[str]) -> Optional[str]:
        if language is None or language.strip() == "" or language.strip().lower() == "auto":
            return None
        lang = language.strip().lower()
        if lang not in self.languages:
            raise bad_request("unsupported_language",
                              f"Language '{language}' is not supported by Whisper. Use an ISO-639-1 "
                              "code such as 'en' or 'ru', or omit 'language' to auto-detect.",
                              param="language")
        return lang

    def _run(self, audio: np.ndarray, *, language: Optional[str], temperature: Optional[float],
             prompt: Optional[str], candidates: Optional[frozenset[str]] = None,
             words: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(language=language, beam_size=self.beam_size,
                                      condition_on_previous_text=False, initial_prompt=prompt or None,
                                      word_timestamps=words)
        if temperature is not None:
            kwargs["temperature"] = temperature
        with self._lock:
            self.model.window_frames = short_window(len(audio)) if self.short_window else None
            # A cap on tokens for the audio's length (speech is < 5 tokens/s): a clip cut mid-word can
            # send the decoder into a repetition loop, and each looped token costs time.
            kwargs["max_new_tokens"] = min(440, int(math.ceil(len(audio) / 16000 * 8)) + 10)
            detected_prob = None
            if language is None:
                kwargs["language"], detected_prob = self._detect_language(audio, candidates)
            try:
                segments_iter, info = self.model.transcribe(audio, **kwargs)
                # The generator is lazy: drain it here, inside the worker thread and the lock.
                raw = list(segments_iter)
                if self.model.window_frames is not None and looks_looped(raw, kwargs["max_new_tokens"]):
                    # The short window sent the decoder round in a loop: decode again with the
                    # model's own 30 s window (costs one more pass, only for this clip).
                    self.model.preencoded = None
                    self.model.window_frames = None
                    self.retried_full_window += 1
                    segments_iter, info = self.model.transcribe(audio, **kwargs)
                    raw = list(segments_iter)
            finally:
                self.model.preencoded = None
                self.model.window_frames = None
            segments = []
            for i, seg in enumerate(raw):
                segments.append({
                    "id": i,
                    "start": round(float(seg.start), 3),
                    "end": round(float(seg.end), 3),
                    "text": seg.text.strip(),
                    "avg_logprob": round(float(seg.avg_logprob), 4),
                    "no_speech_prob": round(float(seg.no_speech_prob), 4),
                })
        text = " ".join(s["text"] for s in segments if s["text"]).strip()
        prob = detected_prob if detected_prob is not None else info.language_probability
        result = {"text": text, "language": info.language,
                  "language_probability": round(float(prob), 4),
                  "duration": round(float(info.duration), 3), "segments": segments}
        if words:  # OpenAI's timestamp_granularities[]=word (cross-attention alignment)
            result["words"] = [{"word": w.word.strip(), "start": round(float(w.start), 3),
                                "end": round(float(w.end), 3)} for seg in raw for w in (seg.words or [])]
        return result

    def _detect_language(self, audio: np.ndarray,
                         candidates: Optional[frozenset[str]] = None) -> tuple[str, float]:
        """Language from the first 30 s window; leaves its encoder output for transcribe() to reuse.

        With `candidates`, the most probable of those languages wins and its probability is
        renormalised over the candidates (so "ru or en" answers ru/en, never a third language).
        """
        from faster_whisper.audio import pad_or_trim

        model = self.model
        fe = model.feature_extractor
        features = fe(audio)  # identical to what transcribe() computes (chunk_length=None)
        content_frames = features.shape[-1] - 1
        window = pad_or_trim(features[:, : max(0, min(fe.nb_max_frames, content_frames))])
        encoded = model.encode(window)
        ranked = [(token[2:-2], float(prob)) for token, prob in model.model.detect_language(encoded)[0]]
        model.preencoded = (window, encoded)
        if candidates:
            within = [(lang, prob) for lang, prob in ranked if lang in candidates]
            total = sum(prob for _, prob in within)
            if within and total > 0:
                return within[0][0], within[0][1] / total
        return ranked[0]

    def validate_candidates(self, candidates: Optional[str]) -> Optional[frozenset[str]]:
        if candidates is None or candidates.strip() == "":
            return None
        langs = frozenset(c.strip().lower() for c in candidates.split(",") if c.strip())
        unknown = sorted(langs - self.languages)
        if unknown:
            raise bad_request("unsupported_language",
                              f"language_candidates holds {', '.join(unknown)}, not Whisper language "
                              "codes. Give a comma-separated list such as 'ru,en'.",
                              param="language_candidates")
        return langs

    def noise_profile(self, audio: np.ndarray, given: Optional[np.ndarray]) -> tuple[Optional[np.ndarray], str]:
        """Background-only audio for the gate, and where it came from."""
        limit = int(NOISE_PROFILE_MAX_S * SAMPLE_RATE)
        if given is not None and len(given) >= NOISE_PROFILE_MIN_S * SAMPLE_RATE:
            return given[-limit:], "given"
        # Background frames, eroded by 3 frames (~0.1 s) each side: the quiet starts and ends of words
        # next to speech frames would teach the gate that speech is noise.
        if self.vad.model is None:  # VAD down: no pause detection, the quietest fifth below
            quiet = np.zeros(0, dtype=bool)
        else:
            quiet = self.vad.frame_probabilities(audio) < NOISE_FRAME_SPEECH_MAX
        eroded = quiet.copy()
        for shift in range(1, 4):
            eroded[shift:] &= quiet[:-shift]
            eroded[:-shift] &= quiet[shift:]
        frames = [audio[i * VAD_FRAME:(i + 1) * VAD_FRAME] for i in np.flatnonzero(eroded)]
        if len(frames) * VAD_FRAME >= NOISE_PROFILE_MIN_S * SAMPLE_RATE:
            return np.concatenate(frames)[-limit:], "clip-pauses"
        count = len(audio) // VAD_FRAME
        if count < 5:
            return None, "none"
        energy = np.square(audio[: count * VAD_FRAME].reshape(count, VAD_FRAME)).sum(axis=1)
        quiet = np.sort(np.argsort(energy)[: max(1, count // 5)])
        return np.concatenate([audio[i * VAD_FRAME:(i + 1) * VAD_FRAME] for i in quiet]), "clip-quietest"

    def transcribe(self, data: bytes, *, language: Optional[str] = None,
                   temperature: Optional[float] = None, prompt: Optional[str] = None,
                   language_candidates: Optional[str] = None, denoise: bool = False,
                   noise: Optional[bytes] = None, words: bool = False) -> dict[str, Any]:
        """Blocking: call from a worker thread.  Raises EngineError for caller mistakes.

        `denoise` applies stationary spectral gating before recognition. Its noise profile is `noise`
        (background-only audio, e.g. the pauses a streaming session heard) when that holds at least
        0.25 s, else the clip's own non-speech frames (Silero), else its quietest fifth.
        """
        if self.model is None:
            raise EngineError(503, "engine_not_ready", "The speech recognition model is still loading; "
                                                       "retry when GET /health says ready.")
        lang = self.validate_language(language)
        candidates = self.validate_candidates(language_candidates)
        audio = decode_audio(data)
        if noise is not None and not denoise:
            raise bad_request("invalid_parameter", "A 'noise' profile was sent without denoise=true; "
                                                   "set denoise=true or leave the profile out.", param="noise")
        profile_audio = decode_audio(noise, field="noise") if noise is not None else None
        t0 = time.monotonic()
        denoised = None
        if denoise:
            profile, source = self.noise_profile(audio, profile_audio)
            audio, denoised = reduce_noise(audio, profile, source)
        try:
            result = self._run(audio, language=lang, temperature=temperature, prompt=prompt,
                               candidates=candidates, words=words)
        except EngineError:
            raise
        except Exception as exc:  # ctranslate2 / tokenizer failures
            log.exception("transcription failed")
            raise server_error("transcription_failed",
                               f"Speech recognition failed inside the engine ({exc.__class__.__name__}). "
                               "Retry; if it persists, restart the engine host.") from None
        if denoised is not None:
            result["noise_reduction"] = denoised
        log.info("transcribed", extra={"fields": {
            "audio_s": result["duration"], "infer_s": round(time.monotonic() - t0, 3),
            "language": result["language"], "chars": len(result["text"])}})
        return result
