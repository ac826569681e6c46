"""Test fixture: Piper (en_US-joe-medium) speech with its phoneme alignments, as SpeechTimings JSON.

Usage: piper_aligned.py MODEL.onnx "text" OUT.wav  → prints {"source", "phonemes": [{ipa, symbol, start, end}], "words": []}
Piper's stress marks, length marks and word spaces come out as their own symbols; they are passed on as they
are (the animator treats them as transparent) and "^", "$" and punctuation become pauses (ipa "").
"""
import json, sys, wave
import onnxruntime
from piper import PiperVoice

# Piper samples durations and pitch noise inside the ONNX graph; ONNX Runtime seeds those random ops from the
# global seed when the session is created, so a fixed seed before loading makes this fixture's audio the same
# on every run (without it, the same sentence comes out a little different each time).
onnxruntime.set_seed(7)

model, text, out = sys.argv[1], sys.argv[2], sys.argv[3]
voice = PiperVoice.load(model, config_path=model + ".json", include_alignments=True)
rate = voice.config.sample_rate
pcm, phonemes, t = b"", [], 0.0
for chunk in voice.synthesize(text, include_alignments=True):
    for a in chunk.phoneme_alignments or []:
        d = a.num_samples / rate
        ipa = "" if a.phoneme in "^$.,?!;:_" else a.phoneme
        phonemes.append({"ipa": ipa, "symbol": a.phoneme, "start": round(t, 4), "end": round(t + d, 4)})
        t += d
    pcm += chunk.audio_int16_bytes
with wave.open(out, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate); w.writeframes(pcm)
print(json.dumps({"source": "piper-alignment", "phonemes": phonemes, "words": []}, ensure_ascii=False))
