"""Vowel/consonant MFCC templates for the Swift MouthEstimator, from Piper (en_US-joe-medium) sentences with
phoneme alignments. Mirrors MouthEstimator's feature code exactly (16 kHz, 25 ms Hamming, 10 ms hop, 512 FFT,
pre-emphasis 0.97, 20 mel bands 100-5000 Hz, log, DCT-II c1..c12, running mean removed).

Usage: ~/.avatar/venv/bin/python scripts/mouth_templates.py scripts/mouth_template_sentences.txt
Prints the per-frame confusion matrix on held-out sentences (every 4th) and writes templates.json (the
templates and the pooled scale pasted into MouthEstimator.classes / .scale). Piper samples its durations
randomly, so a rerun gives slightly different numbers."""
import json, sys, numpy as np
from scipy.signal import resample_poly
from piper import PiperVoice
SR = 16000; WIN = 400; HOP = 160; NFFT = 512; BANDS = 20; CEPS = 12
def mel(f): return 1127 * np.log(1 + f / 700)
def imel(m): return 700 * (np.exp(m / 1127) - 1)
edges = imel(np.linspace(mel(100), mel(5000), BANDS + 2))
bins = edges * NFFT / SR
fb = np.zeros((BANDS, NFFT // 2 + 1))
for b in range(BANDS):
    lo, c, hi = bins[b], bins[b + 1], bins[b + 2]
    for k in range(NFFT // 2 + 1):
        if lo < k < hi:
            fb[b, k] = (k - lo) / (c - lo) if k <= c else (hi - k) / (hi - c)
ham = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(WIN) / (WIN - 1))
dct = np.array([[np.cos(np.pi * n * (b + 0.5) / BANDS) for b in range(BANDS)] for n in range(1, CEPS + 1)])
def features(x):
    out = []; level = []
    for j in range(0, (len(x) - WIN) // HOP + 1):
        f = x[j * HOP: j * HOP + WIN].astype(np.float64)
        f = np.concatenate([[f[0]], f[1:] - 0.97 * f[:-1]]) * ham
        p = np.abs(np.fft.rfft(f, NFFT)) ** 2
        e = np.log(fb @ p + 1e-8)
        out.append(dct @ e); level.append(10 * np.log10(np.mean(x[j*HOP:j*HOP+WIN].astype(np.float64) ** 2) + 1e-10))
    return np.array(out), np.array(level)
classes = {"a": "aɑæʌɐɒ", "e": "eɛəɜ", "i": "iɪ", "o": "oɔ", "u": "uʊw", "m": "mnŋ", "s": "szʃʒθfv"}
m = "/root/.avatar/models/piper/en_US-joe-medium.onnx"
voice = PiperVoice.load(m, config_path=m + ".json", include_alignments=True)
sentences = [l.strip() for l in open(sys.argv[1]) if l.strip()]
data = {c: [] for c in classes}; test = {c: [] for c in classes}
for si, text in enumerate(sentences):
    pcm = b""; ph = []; t = 0.0
    for ch in voice.synthesize(text, include_alignments=True):
        for a in ch.phoneme_alignments or []:
            d = a.num_samples / voice.config.sample_rate; ph.append((a.phoneme, t, t + d)); t += d
        pcm += ch.audio_int16_bytes
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64) / 32768
    x = resample_poly(x, 320, 441)
    F, L = features(x)
    speech = L > L.max() - 35
    F = F - F[speech].mean(axis=0)
    # merge stress/length into next/previous like the Swift timeline would
    for sym, s, e in ph:
        for c, chars in classes.items():
            if sym in chars:
                mid = (s + e) / 2; half = max((e - s) / 2 - 0.01, 0.005)
                js = [j for j in range(len(F)) if abs((j * HOP + WIN / 2) / SR - mid) <= half]
                (test if si % 4 == 3 else data)[c].extend(F[js])
T = {c: np.mean(v, axis=0) for c, v in data.items() if v}
S = np.sqrt(np.mean([np.var(v, axis=0) for v in data.values() if v], axis=0))
for c in T: print(c, len(data[c]), len(test[c]))
names = list(T)
conf = np.zeros((len(names), len(names)), int)
for i, c in enumerate(names):
    for f in test[c]:
        d = [np.sum(((f - T[k]) / S) ** 2) for k in names]; conf[i, int(np.argmin(d))] += 1
print("confusion (rows true):", names); print(conf)
print("accuracy", np.trace(conf) / conf.sum())
json.dump({"templates": {c: [round(v, 3) for v in T[c]] for c in names}, "scale": [round(v, 3) for v in S]}, open("templates.json", "w"))
