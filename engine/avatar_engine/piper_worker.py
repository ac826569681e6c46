"""Piper TTS worker, run as a separate process (piper-tts is GPL-3.0: keep it out of the host process).

    python -m avatar_engine.piper_worker --model X.onnx --config X.onnx.json

Protocol (binary-safe, one request at a time):
  start-up  -> stdout: {"ready": true, "sample_rate": 22050, "length_scale": 1.0}\\n
  request   <- stdin : {"text": "...", "length_scale": 1.0, "sentence_silence": 0.2}\\n
  response  -> stdout: {"ok": true, "sample_rate": N, "nbytes": M,
                        "phonemes": [[ipa, start_sample, end_sample, word_index], ...] | null}\\n
                        + M bytes of s16le mono PCM
               phonemes come from the voice's own durations (the model is patched in memory to output
               them; needs the onnx package); ipa "" is a pause, word_index -1 outside words.
            or          {"ok": false, "error": "..."}\\n
Everything else (logs, stray C-level prints) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _log(event: str, **fields) -> None:
    rec = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "level": "INFO",
           "logger": "avatar_engine.piper_worker", "msg": event, **fields}
    sys.stderr.write(json.dumps(rec, ensure_ascii=False) + "\n")
    sys.stderr.flush()


PUNCTUATION = set(".,!?;:…—-\"'()«»¡¿")
STRESS = set("ˈˌ")


def _modifier(ch: str) -> bool:
    import unicodedata
    return ch in "ːˑʲʷ" or (unicodedata.category(ch) in ("Mn", "Lm") and ch not in STRESS)


def alignment_phonemes(alignments, offset: int, sr: int, word: int) -> tuple[list, int, int]:
    """Piper's per-symbol sample counts -> phonemes: stress marks join the next phoneme, length marks
    and diacritics the previous one, short word gaps the previous phoneme, long ones become pauses."""
    out: list[list] = []
    pending_start = None
    in_word = False
    for a in alignments:
        sym, n = a.phoneme, int(a.num_samples)
        start, offset = offset, offset + n
        if sym in ("^", "$", "_") or sym in PUNCTUATION or sym == " ":
            if in_word:
                word, in_word = word + 1, False
            if sym == " " and n < 0.08 * sr and out and out[-1][0]:
                out[-1][2] = offset
            elif out and not out[-1][0]:
                out[-1][2] = offset
            else:
                out.append(["", start, offset, -1])
            pending_start = None
        elif sym in STRESS:
            pending_start = start if pending_start is None else pending_start
        elif _modifier(sym) and out and out[-1][0]:
            out[-1][0] += sym
            out[-1][2] = offset
        else:
            out.append([sym, start if pending_start is None else pending_start, offset, word])
            pending_start, in_word = None, True
    if in_word:
        word += 1
    return out, offset, word


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()

    # Keep a private handle on the real stdout, then point fd 1 at stderr so nothing else
    # (onnxruntime, espeak) can corrupt the protocol stream.
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer

    from piper import PiperVoice
    from piper.config import SynthesisConfig

    try:  # expose the per-phoneme durations (patches the ONNX graph in memory; needs `onnx`)
        voice = PiperVoice.load(args.model, config_path=args.config, include_alignments=True)
        aligned = True
    except Exception as exc:
        _log("alignments unavailable", error=f"{exc.__class__.__name__}: {exc}")
        voice = PiperVoice.load(args.model, config_path=args.config)
        aligned = False
    base_scale = float(voice.config.length_scale or 1.0)
    sr = int(voice.config.sample_rate)
    # Warm up the ONNX session.
    for _ in voice.synthesize("Ready."):
        pass
    proto.write((json.dumps({"ready": True, "sample_rate": sr, "length_scale": base_scale,
                             "alignments": aligned}) + "\n").encode())

    while True:
        line = inp.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
            text = str(req["text"])
            scale = float(req.get("length_scale") or base_scale)
            silence = max(0.0, min(2.0, float(req.get("sentence_silence") or 0.0)))
            cfg = SynthesisConfig(length_scale=scale)
            parts: list[bytes] = []
            phonemes: list | None = [] if aligned else None
            offset, word = 0, 0
            for c in voice.synthesize(text, syn_config=cfg, include_alignments=aligned):
                if parts and silence > 0:  # a pause between sentences
                    gap = int(silence * sr)
                    parts.append(b"\0\0" * gap)
                    if phonemes is not None:
                        if phonemes and not phonemes[-1][0]:
                            phonemes[-1][2] += gap
                        else:
                            phonemes.append(["", offset, offset + gap, -1])
                    offset += gap
                audio = c.audio_int16_bytes
                parts.append(audio)
                if phonemes is not None:
                    if c.phoneme_alignments:
                        items, _, word = alignment_phonemes(c.phoneme_alignments, offset, sr, word)
                        if items and phonemes and not phonemes[-1][0] and not items[0][0]:
                            phonemes[-1][2] = items[0][2]
                            items = items[1:]
                        phonemes.extend(items)
                    else:
                        phonemes = None  # one sentence failed to align: no timings rather than wrong ones
                offset += len(audio) // 2
            pcm = b"".join(parts)
            if phonemes:  # the model's sample counts can differ from the audio by a hop: clamp
                for p in phonemes:
                    p[1], p[2] = min(p[1], offset), min(p[2], offset)
                phonemes[-1][2] = offset
            proto.write((json.dumps({"ok": True, "sample_rate": sr, "nbytes": len(pcm), "phonemes": phonemes},
                                    ensure_ascii=False) + "\n").encode())
            proto.write(pcm)
        except Exception as exc:  # report, keep serving
            _log("synthesis failed", error=f"{exc.__class__.__name__}: {exc}")
            proto.write((json.dumps({"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
