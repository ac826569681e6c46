"""eSpeak NG through ctypes: robotic fallback voices for languages no natural voice here speaks."""

from __future__ import annotations

import threading
from typing import Optional

from ..errors import server_error
from ..prosody import phoneme
from .common import Audio, TTSBackend, Voice

ESPEAK_LANGUAGES = [("en", "English"), ("ru", "Russian"), ("de", "German"), ("fr", "French"), ("es", "Spanish"),
                    ("it", "Italian"), ("pt", "Portuguese"), ("uk", "Ukrainian"), ("pl", "Polish"), ("tr", "Turkish")]


class EspeakLibrary:
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


class EspeakBackend(TTSBackend):
    """Their absence does not degrade TTS (`required = False`): they are a fallback."""

    name = "espeak"
    required = False

    def __init__(self) -> None:
        super().__init__([Voice(f"espeak-{code}", f"eSpeak NG {name} (robotic fallback)", code, "male", self.name,
                                espeak_voice=code) for code, name in ESPEAK_LANGUAGES])
        self.library: Optional[EspeakLibrary] = None

    def load(self) -> None:
        try:
            self.library = EspeakLibrary()
        except Exception as exc:
            raise RuntimeError(f"espeak-ng is not available ({exc}); apt-get install espeak-ng") from exc
        for voice in self.voices:
            voice.sample_rate, voice.ready = self.library.sample_rate, True

    def synthesize(self, voice: Voice, text: str, speed: float) -> Audio:
        assert self.library is not None
        return self.library.synthesize(voice, text, speed)
