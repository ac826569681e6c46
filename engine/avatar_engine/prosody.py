"""Emotions as prosody, and the timing bookkeeping every TTS engine shares.

An emotion with an intensity 0..1 becomes four real changes to the speech:
  rate        speaking rate (engine-native: Piper length_scale, HTS -r, espeak words/min; sox tempo otherwise)
  semitones   mean pitch shift (sox `pitch`, duration kept)
  gain_db     loudness relative to the neutral level
  pause_scale length of the pauses between phrases and sentences (silences cut or stretched in place)
Neutral is the identity; intensity scales each change linearly from neutral.
"""

from __future__ import annotations

import subprocess
import unicodedata
from dataclasses import dataclass, asdict
from typing import Any, Optional

import numpy as np

EMOTIONS: dict[str, tuple[float, float, float, float]] = {
    #            rate  semitones gain_db pause_scale
    "neutral":  (1.00,  0.0,  0.0, 1.00),
    "happy":    (1.08,  2.0,  1.5, 0.85),
    "sad":      (0.84, -2.0, -3.0, 1.50),
    "excited":  (1.16,  3.0,  3.0, 0.70),
    "calm":     (0.90, -1.0, -2.0, 1.30),
    # Anger: clipped and loud, pitch held low; fear: hurried, higher, quieter.
    "angry":    (1.05, -1.0,  3.0, 0.80),
    "fearful":  (1.12,  2.5, -1.5, 0.75),
}
# Neutral speech is peak-normalised to this level, leaving 3 dB of headroom for "excited".
NEUTRAL_PEAK = 0.70


@dataclass
class Prosody:
    emotion: str
    intensity: float
    rate: float
    semitones: float
    gain_db: float
    pause_scale: float

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def prosody_for(emotion: str, intensity: float) -> Prosody:
    rate, semi, gain, pause = EMOTIONS[emotion]
    k = max(0.0, min(1.0, intensity))
    return Prosody(emotion, k, 1 + (rate - 1) * k, semi * k, gain * k, 1 + (pause - 1) * k)


# --- timings ---------------------------------------------------------------------------------
# A phoneme is a dict {"ipa": str, "symbol": str, "start": s, "end": s}; ipa "" marks a pause.

def phoneme(ipa: str, symbol: str, start: float, end: float) -> dict[str, Any]:
    return {"ipa": ipa, "symbol": symbol, "start": round(start, 4), "end": round(end, 4)}


def text_words(text: str) -> list[str]:
    """The words of the text as a reader sees them (letters/digits, inner apostrophes and hyphens)."""
    out = []
    for token in text.split():
        core = "".join(ch for ch in token if ch.isalnum() or ch in "'-’")
        core = core.strip("'-’")
        if any(ch.isalnum() for ch in core):
            out.append(core)
    return out


def scale_times(timings: dict[str, Any], factor: float, duration: float) -> dict[str, Any]:
    for item in timings["phonemes"] + timings["words"]:
        item["start"] = round(min(item["start"] * factor, duration), 4)
        item["end"] = round(min(item["end"] * factor, duration), 4)
    return timings


def scale_pauses(pcm: np.ndarray, sr: int, timings: Optional[dict[str, Any]], scale: float) -> np.ndarray:
    """Stretches or shortens the inner pauses (pause phonemes ≥ 60 ms between speech) by `scale`,
    cutting or inserting silence in the middle of each pause, and moves the timings to match."""
    if timings is None or abs(scale - 1) < 1e-3:
        return pcm
    phonemes = timings["phonemes"]
    speech = [i for i, p in enumerate(phonemes) if p["ipa"]]
    if len(speech) < 2:
        return pcm
    first, last = speech[0], speech[-1]
    edits: list[tuple[float, float]] = []  # (time in original, seconds added (+) or removed (-))
    for i in range(first + 1, last):
        p = phonemes[i]
        length = p["end"] - p["start"]
        if p["ipa"] or length < 0.06:
            continue
        edits.append(((p["start"] + p["end"]) / 2, length * (scale - 1)))
    if not edits:
        return pcm
    pieces, cursor = [], 0
    for at, delta in edits:
        pos = int(at * sr)
        if delta >= 0:
            pieces.append(pcm[cursor:pos])
            pieces.append(np.zeros(int(delta * sr), dtype=pcm.dtype))
            cursor = pos
        else:
            cut = int(-delta * sr)
            pieces.append(pcm[cursor:max(cursor, pos - cut // 2)])
            cursor = pos + (cut - cut // 2)
    pieces.append(pcm[cursor:])
    out = np.concatenate(pieces)

    def moved(t: float) -> float:
        shift = 0.0
        for at, delta in edits:
            if delta >= 0:
                if t > at:
                    shift += delta
            else:
                lo, hi = at + delta / 2, at - delta / 2  # the removed stretch
                if t >= hi:
                    shift += delta
                elif t > lo:
                    shift -= t - lo
        return t + shift

    for item in phonemes + timings["words"]:
        item["start"] = round(max(0.0, moved(item["start"])), 4)
        item["end"] = round(max(item["start"], moved(item["end"])), 4)
    return out


def pitch_shift(pcm: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Mean pitch shift by `semitones`, duration kept (sox `pitch`, a WSOLA time-stretch + resample)."""
    if abs(semitones) < 0.05:
        return pcm
    proc = subprocess.run(
        ["sox", "-t", "raw", "-r", str(sr), "-e", "signed", "-b", "16", "-c", "1", "-",
         "-t", "raw", "-", "pitch", f"{semitones * 100:.0f}"],
        input=pcm.astype("<i2").tobytes(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("sox pitch failed: " + proc.stderr.decode("utf-8", "replace").strip()[:200])
    out = np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16)
    # sox keeps the length within a few samples; make it exact so the timings still hold.
    if len(out) >= len(pcm):
        return out[:len(pcm)]
    return np.concatenate([out, np.zeros(len(pcm) - len(out), dtype=np.int16)])


def level(pcm: np.ndarray, gain_db: float) -> np.ndarray:
    """Peak-normalises to the neutral level, then applies the emotion's gain (never clipping)."""
    x = pcm.astype(np.float32) / 32768.0
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < 1e-4:
        return pcm
    target = min(0.98, NEUTRAL_PEAK * 10 ** (gain_db / 20))
    return np.clip(x * (target / peak) * 32768.0, -32768, 32767).astype(np.int16)


# --- IPA for engine phone sets ---------------------------------------------------------------
# Festival's US English "radio" phone set (cmu_us_slt_arctic_hts).
RADIO_IPA = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ",
    "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "eh": "ɛ", "el": "l", "em": "m", "en": "n",
    "er": "ɝ", "ey": "eɪ", "f": "f", "g": "ɡ", "hh": "h", "ih": "ɪ", "ix": "ɨ", "iy": "i", "jh": "dʒ",
    "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ", "ow": "oʊ", "oy": "ɔɪ", "p": "p", "r": "ɹ",
    "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "uh": "ʊ", "uw": "u", "v": "v", "w": "w", "y": "j",
    "z": "z", "zh": "ʒ",
}
# Festival's Russian voice (msu_ru_nsh): a doubled letter marks a palatalised consonant or a stressed vowel.
RU_BASE_IPA = {
    "a": "a", "e": "e", "i": "i", "o": "o", "u": "u", "y": "ɨ", "b": "b", "v": "v", "g": "ɡ", "d": "d",
    "zh": "ʐ", "z": "z", "j": "j", "k": "k", "l": "l", "m": "m", "n": "n", "p": "p", "r": "r", "s": "s",
    "t": "t", "f": "f", "h": "x", "c": "ts", "ch": "tɕ", "sh": "ʂ", "sch": "ɕː", "ae": "æ",
}
PAUSES = {"pau", "h#", "brth", "sil", "#", "_"}


def festival_ipa(symbol: str, language: str) -> str:
    if symbol in PAUSES:
        return ""
    if language != "ru":
        return RADIO_IPA.get(symbol, symbol)
    if symbol in RU_BASE_IPA:
        return RU_BASE_IPA[symbol]
    if len(symbol) >= 2 and symbol[-1] == symbol[-2] and symbol[:-1] in RU_BASE_IPA:
        base = RU_BASE_IPA[symbol[:-1]]
        return base if base in "aeiouɨ" else base + "ʲ"
    return symbol


def is_ipa_modifier(ch: str) -> bool:
    """Length marks, palatalisation and other modifiers that belong to the previous phoneme."""
    return ch in "ːˑʲʷ̃" or unicodedata.category(ch) in ("Mn", "Lm") and ch not in "ˈˌ"
