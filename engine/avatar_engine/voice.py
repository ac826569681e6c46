"""Voice samples: analysis, speaker embeddings (Resemblyzer) and WORLD pitch/formant conversion.

What the voice cloner needs from the engine host and no standard API offers:

* ``analyze``: the upload's own format (rate, channels, codec) and measurements on it -- duration,
  peak and RMS level, the fraction of clipped samples, an SNR estimate, the fraction of speech (Silero
  VAD, borrowed from the ASR engine), F0 statistics (WORLD DIO + StoneMask) and the mean log spectral
  envelope of voiced frames (WORLD CheapTrick), from which a formant ratio between two voices is found.
* ``embedding``: Resemblyzer's 256-d GE2E speaker embedding (L2-normalised, so a dot product is the
  cosine similarity). Same speaker ~0.93-0.96, different speakers 0.42-0.71 (ARCHITECTURE.md §4).
* ``convert``: WORLD analysis/synthesis of an utterance with F0 moved to a target's log-F0 mean/std
  and the spectral envelope warped in frequency by a formant ratio -- an *approximate* voice match,
  not cloning.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Optional

import numpy as np

from .errors import bad_request, server_error, unprocessable
from .tts import pcm_to_wav

log = logging.getLogger("avatar_engine.voice")

ANALYSIS_RATE = 16000
FRAME = 512  # 32 ms at 16 kHz, the VAD's frame
ENVELOPE_FFT = 1024  # 513 envelope bins of 15.6 Hz at 16 kHz
F0_FLOOR, F0_CEIL = 60.0, 600.0
FRAME_PERIOD_MS = 5.0
CLIP_LEVEL = 0.985  # |x| at or above this share of full scale counts as clipped
FFMPEG_TIMEOUT_S = 120
FORMANT_RATIOS = np.round(np.arange(0.80, 1.2501, 0.01), 2)
ENVELOPE_BAND_HZ = (200.0, 5000.0)


# ---------------------------------------------------------------------------------------------
def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=FFMPEG_TIMEOUT_S,
                              check=False)
    except FileNotFoundError:
        raise server_error("ffmpeg_missing", f"{what} is not installed on the engine host; install it "
                                             "(apt-get install ffmpeg).") from None
    except subprocess.TimeoutExpired:
        raise bad_request("unsupported_media", f"Decoding the audio took longer than {FFMPEG_TIMEOUT_S} s; "
                                               "send a shorter recording.", param="file") from None


class DecodedAudio:
    """An upload decoded by ffmpeg: its own format, its native-rate samples, and 16 kHz mono."""

    def __init__(self, data: bytes) -> None:
        if not data:
            raise bad_request("empty_input", "The uploaded audio file is empty (0 bytes). Send a recording "
                                             "of speech as the 'file' field.", param="file")
        with tempfile.NamedTemporaryFile(prefix="avatar-voice-", suffix=".bin") as tmp:
            tmp.write(data)
            tmp.flush()
            probe = _run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=sample_rate,channels,codec_name:format=format_name,duration",
                          "-of", "json", tmp.name], "ffprobe")
            info = {}
            try:
                info = json.loads(probe.stdout or b"{}")
            except ValueError:
                pass
            streams = info.get("streams") or []
            if probe.returncode != 0 or not streams:
                raise bad_request("unsupported_media", "The uploaded file is not audio ffmpeg can read (no "
                                                       "audio stream found). Send WAV, MP3, OGG/Opus, FLAC, "
                                                       "WebM or M4A.", param="file")
            stream = streams[0]
            self.sample_rate = int(stream.get("sample_rate") or 0)
            self.channels = int(stream.get("channels") or 0)
            self.codec = str(stream.get("codec_name") or "?")
            self.container = str((info.get("format") or {}).get("format_name") or "?")
            if self.sample_rate <= 0 or self.channels <= 0:
                raise bad_request("unsupported_media", "The audio stream has no sample rate or channel "
                                                       "count; re-export it as WAV.", param="file")
            native = self._decode(tmp.name, ["-f", "f32le", "-acodec", "pcm_f32le"])
            self.native = native.reshape(-1, self.channels) if native.size >= self.channels else \
                np.zeros((0, self.channels), np.float32)
            self.mono16k = self._decode(tmp.name, ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1",
                                                   "-ar", str(ANALYSIS_RATE)])
        if self.mono16k.size < 2:
            raise bad_request("empty_input", "The uploaded audio decodes to no samples (zero length). Send a "
                                             "recording that contains speech.", param="file")

    @staticmethod
    def _decode(path: str, args: list[str]) -> np.ndarray:
        proc = _run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-vn", *args,
                     "pipe:1"], "ffmpeg")
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            text = detail[-1].replace(path, "input")[:200] if detail else f"exit status {proc.returncode}"
            raise bad_request("unsupported_media", f"The upload could not be decoded as audio (ffmpeg: {text}).",
                              param="file")
        raw = proc.stdout
        return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4").copy()

    @property
    def duration(self) -> float:
        return len(self.mono16k) / ANALYSIS_RATE

    def mono_native(self) -> np.ndarray:
        return self.native.mean(axis=1) if self.native.size else self.mono16k


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    return pcm_to_wav((np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes(), sample_rate)


def _db(power: float) -> float:
    return float(10.0 * np.log10(max(power, 1e-12)))


# ---------------------------------------------------------------------------------------------
def world_f0(x: np.ndarray, fs: int) -> np.ndarray:
    import pyworld

    f0, t = pyworld.dio(x, fs, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    return pyworld.stonemask(x, f0, t, fs)


def f0_statistics(f0: np.ndarray) -> dict[str, Any]:
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        return {"voiced_ratio": round(float(voiced.size / max(f0.size, 1)), 3), "median_hz": None,
                "log_mean": None, "log_std": None}
    logs = np.log(voiced)
    return {"voiced_ratio": round(float(voiced.size / f0.size), 3),
            "median_hz": round(float(np.median(voiced)), 1),
            "log_mean": round(float(logs.mean()), 4),
            "log_std": round(float(max(logs.std(), 1e-3)), 4)}


def mean_envelope(x: np.ndarray, fs: int, f0: np.ndarray) -> Optional[np.ndarray]:
    """Mean log spectral envelope (natural log power) over voiced frames, on ENVELOPE_FFT//2+1 bins at fs."""
    import pyworld

    t = np.arange(len(f0)) * FRAME_PERIOD_MS / 1000.0
    sp = pyworld.cheaptrick(x, f0, t, fs, fft_size=ENVELOPE_FFT)
    voiced = f0 > 0
    if voiced.sum() < 10:
        return None
    return np.log(sp[voiced] + 1e-12).mean(axis=0)


def estimate_formant_ratio(source: np.ndarray, target: np.ndarray, fs: int = ANALYSIS_RATE) -> tuple[float, float]:
    """The frequency scale a (source -> target) that best aligns two mean log envelopes, and its correlation.

    A ratio above 1 moves the source's formants up (a shorter vocal tract), below 1 down."""
    freqs = np.linspace(0, fs / 2, len(source))
    band = (freqs >= ENVELOPE_BAND_HZ[0]) & (freqs <= ENVELOPE_BAND_HZ[1])
    tgt = target[band] - target[band].mean()
    best, best_corr = 1.0, -2.0
    for ratio in FORMANT_RATIOS:
        warped = np.interp(freqs / ratio, freqs, source)[band]
        warped = warped - warped.mean()
        corr = float(np.dot(warped, tgt) / (np.linalg.norm(warped) * np.linalg.norm(tgt) + 1e-12))
        if corr > best_corr:
            best, best_corr = float(ratio), corr
    return best, best_corr


def warp_frequency(spectra: np.ndarray, ratio: float) -> np.ndarray:
    """new[:, k] = old[:, k / ratio] (linear interpolation along frequency, edge bins held)."""
    bins = spectra.shape[1]
    pos = np.clip(np.arange(bins) / ratio, 0, bins - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    w = (pos - lo)[None, :]
    return spectra[:, lo] * (1 - w) + spectra[:, hi] * w


# ---------------------------------------------------------------------------------------------
class VoiceEngine:
    """Resemblyzer speaker encoder + WORLD analysis/conversion. ``speech_probabilities`` is the host's
    VAD capability (Silero, vad.py) (bytes of a 16 kHz WAV -> {"probabilities": [...]}), used for the speech ratio."""

    def __init__(self, speech_probabilities: Callable[[bytes], dict[str, Any]], *, threads: int = 1) -> None:
        self._vad = speech_probabilities
        self._threads = threads
        self._encoder = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.load_seconds: Optional[float] = None
        self._torch_version: Optional[str] = None

    def load(self) -> None:
        """Start-up check only: the packages are importable. The speaker encoder itself loads on the first
        embedding request (torch + librosa imports and the first mel spectrogram take 7-40 s on 2 busy
        cores, and most sessions never clone a voice), so it does not delay every engine host start."""
        import importlib.util

        missing = [name for name in ("torch", "resemblyzer", "webrtcvad", "librosa", "pyworld")
                   if importlib.util.find_spec(name) is None]
        if missing:
            raise RuntimeError(f"Python packages missing: {', '.join(missing)}; run `avatar setup`")

    def _ensure_encoder(self):
        with self._load_lock:
            if self._encoder is None:
                t0 = time.monotonic()
                import torch
                from resemblyzer import VoiceEncoder

                torch.set_num_threads(self._threads)
                self._torch_version = torch.__version__
                encoder = VoiceEncoder("cpu", verbose=False)
                rng = np.random.default_rng(0)
                encoder.embed_utterance((rng.standard_normal(ANALYSIS_RATE * 2) * 0.05).astype(np.float32))
                self._encoder = encoder
                self.load_seconds = round(time.monotonic() - t0, 3)
                log.info("speaker encoder loaded", extra={"fields": {"seconds": self.load_seconds}})
            return self._encoder

    def info(self) -> dict[str, Any]:
        return {"model": "resemblyzer-ge2e", "embedding_size": 256, "device": "cpu",
                "encoder_loaded": self._encoder is not None, "loads": "on first embedding request",
                "torch": self._torch_version, "converter": "pyworld (WORLD)", "load_seconds": self.load_seconds}

    # -- analysis --------------------------------------------------------------------------
    def analyze(self, data: bytes) -> dict[str, Any]:
        audio = DecodedAudio(data)
        native = audio.native
        peak = float(np.abs(native).max()) if native.size else 0.0
        clipped = float((np.abs(native) >= CLIP_LEVEL).mean()) if native.size else 0.0
        x = audio.mono16k
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        frames = len(x) // FRAME
        probs = np.zeros(0)
        if frames > 0:
            probs = np.asarray(self._vad(wav_bytes(x, ANALYSIS_RATE)).get("probabilities", []), dtype=float)[:frames]
        speech = probs >= 0.5
        snr = None
        if frames >= 4:
            power = (x[: frames * FRAME].astype(np.float64).reshape(frames, FRAME) ** 2).mean(axis=1)
            quiet = np.sort(power)[: max(1, frames // 10)]
            noise = float(quiet.mean())
            loud = power[: len(speech)][speech] if speech.any() else np.sort(power)[frames // 2:]
            signal = float(loud.mean())
            snr = round(min(60.0, _db(max(signal - noise, 1e-12)) - _db(noise)), 1) if noise > 0 else 60.0
        x64 = x.astype(np.float64)
        f0 = world_f0(x64, ANALYSIS_RATE) if len(x) >= ANALYSIS_RATE // 4 else np.zeros(0)
        stats = f0_statistics(f0)
        envelope = mean_envelope(x64, ANALYSIS_RATE, f0) if f0.size else None
        median = stats["median_hz"]
        return {
            "duration": round(audio.duration, 3),
            "sample_rate": audio.sample_rate, "channels": audio.channels,
            "codec": audio.codec, "container": audio.container,
            "peak_dbfs": round(_db(peak ** 2), 2), "rms_dbfs": round(_db(rms ** 2), 2),
            "clipped_fraction": round(clipped, 6),
            "snr_db": snr,
            "speech_ratio": round(float(speech.mean()), 3) if speech.size else 0.0,
            "f0": stats,
            "gender": None if median is None else ("male" if median < 165.0 else "female"),
            "envelope": None if envelope is None else [round(float(v), 3) for v in envelope],
        }

    # -- embedding -------------------------------------------------------------------------
    def embedding(self, data: bytes) -> dict[str, Any]:
        encoder = self._ensure_encoder()
        from resemblyzer import preprocess_wav

        audio = DecodedAudio(data)
        wav = preprocess_wav(audio.mono16k, source_sr=ANALYSIS_RATE)
        speech_seconds = len(wav) / ANALYSIS_RATE
        if speech_seconds < 0.5:
            raise unprocessable("too_little_speech", f"Only {speech_seconds:.2f} s of speech was found in "
                                                     f"{audio.duration:.2f} s of audio; the speaker encoder "
                                                     "needs at least 0.5 s (3 s or more is better).", param="file")
        with self._lock:
            vector = encoder.embed_utterance(wav)
        return {"embedding": [round(float(v), 6) for v in vector], "duration": round(audio.duration, 3),
                "speech_seconds": round(speech_seconds, 3), "model": "resemblyzer-ge2e"}

    # -- conversion ------------------------------------------------------------------------
    def convert(self, data: bytes, *, f0_log_mean: float, f0_log_std: float,
                formant_ratio: Optional[float], target_envelope: Optional[list[float]]) -> tuple[bytes, dict[str, Any]]:
        import pyworld

        if not (np.log(F0_FLOOR) <= f0_log_mean <= np.log(F0_CEIL)):
            raise bad_request("invalid_parameter", f"f0_log_mean must be the natural log of a pitch between "
                                                   f"{F0_FLOOR:.0f} and {F0_CEIL:.0f} Hz.", param="f0_log_mean")
        if not (0.0 < f0_log_std <= 1.0):
            raise bad_request("invalid_parameter", "f0_log_std must be between 0 and 1.", param="f0_log_std")
        if formant_ratio is not None and not (0.7 <= formant_ratio <= 1.4):
            raise bad_request("invalid_parameter", "formant_ratio must be between 0.7 and 1.4.", param="formant_ratio")
        audio = DecodedAudio(data)
        fs = audio.sample_rate
        x = audio.mono_native().astype(np.float64)
        if len(x) < fs // 4:
            raise unprocessable("too_short", "The utterance to convert is shorter than 0.25 s.", param="file")
        f0 = world_f0(x, fs)
        t = np.arange(len(f0)) * FRAME_PERIOD_MS / 1000.0
        sp = pyworld.cheaptrick(x, f0, t, fs)
        ap = pyworld.d4c(x, f0, t, fs)
        source = f0_statistics(f0)
        if source["log_mean"] is None:
            raise unprocessable("no_voiced_speech", "The utterance has no voiced speech to convert.", param="file")
        correlation = None
        if formant_ratio is None:
            if not target_envelope:
                formant_ratio = 1.0
            else:
                x16 = audio.mono16k.astype(np.float64)
                f16 = world_f0(x16, ANALYSIS_RATE)
                src_env = mean_envelope(x16, ANALYSIS_RATE, f16)
                tgt = np.asarray(target_envelope, dtype=float)
                if src_env is None or tgt.shape != src_env.shape:
                    raise bad_request("invalid_parameter", f"target_envelope must have {ENVELOPE_FFT // 2 + 1} "
                                                           "values (from /v1/voice/analyze).", param="target_envelope")
                formant_ratio, correlation = estimate_formant_ratio(src_env, tgt)
        voiced = f0 > 0
        new_f0 = np.zeros_like(f0)
        z = (np.log(f0[voiced]) - source["log_mean"]) / source["log_std"]
        new_f0[voiced] = np.exp(z * f0_log_std + f0_log_mean)
        if abs(formant_ratio - 1.0) > 1e-3:
            sp = warp_frequency(sp, formant_ratio)
            ap = warp_frequency(ap, formant_ratio)
        y = pyworld.synthesize(new_f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), fs, FRAME_PERIOD_MS)
        peak_in, peak_out = float(np.abs(x).max()), float(np.abs(y).max())
        if peak_out > 0:
            y = y * (min(peak_in, 0.95) / peak_out)
        info = {"sample_rate": fs, "duration": round(len(y) / fs, 3), "formant_ratio": round(formant_ratio, 3),
                "envelope_correlation": None if correlation is None else round(correlation, 3),
                "source_f0_median_hz": source["median_hz"],
                "target_f0_median_hz": round(float(np.exp(f0_log_mean)), 1)}
        return wav_bytes(y.astype(np.float32), fs), info
