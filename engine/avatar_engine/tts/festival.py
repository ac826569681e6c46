"""Festival voices (slt HTS, msu_ru_nsh clunits), each synthesised by `festival -b script.scm`."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
import threading
import unicodedata
import wave
from pathlib import Path
from typing import Optional

from ..errors import bad_request, server_error
from ..prosody import festival_ipa, phoneme, scale_times, text_words
from .common import Audio, TTSBackend, Voice, read_wav_mono16

log = logging.getLogger("avatar_engine.tts")

INSTALL_HINT = "apt-get install festival festvox-us-slt-hts festvox-ru"


def festival_voices() -> list[Voice]:
    return [
        Voice("slt", "SLT (US English, Festival HTS)", "en", "female", "festival",
              festival_voice="voice_cmu_us_slt_arctic_hts", festival_speed="hts"),
        Voice("msu_ru_nsh", "NSh (Russian, Festival clunits)", "ru", "male", "festival",
              festival_voice="voice_msu_ru_nsh_clunits", festival_speed="sox"),
    ]


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


class FestivalBackend(TTSBackend):
    """Each voice is proved at start-up by synthesising one word (which also reveals its sample rate): a
    voice whose Festival package is missing is down on its own, the other voices serve."""

    name = "festival"

    def __init__(self, voices: Optional[list[Voice]] = None, binary: str = "festival") -> None:
        super().__init__(festival_voices() if voices is None else voices)
        self.binary = binary
        self._sem = threading.Semaphore(2)  # at most two Festival processes at once

    def load(self) -> None:
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"Festival is not installed ({self.binary} not found; {INSTALL_HINT})")
        for voice in self.voices:
            try:
                _, sr, _ = self.synthesize(voice, "Да." if voice.language == "ru" else "Ready.", 1.0)
                voice.sample_rate, voice.ready, voice.error = sr, True, None
            except Exception as exc:
                voice.error = f"Festival voice {voice.id} failed: {getattr(exc, 'message', exc)}"
                log.error("voice failed to load", extra={"fields": {"voice": voice.id, "error": voice.error}})

    def info(self) -> dict:
        return {"binary": self.binary}

    def synthesize(self, voice: Voice, text: str, speed: float) -> Audio:
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
            cmd = [self.binary, "-b", str(script)]
            timeout = 30.0 + len(text) * 0.2
            with self._sem:
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
                timings = self.timings(segs, voice.language, safe)
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
    def timings(path: Path, language: str, text: str) -> Optional[dict]:
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

