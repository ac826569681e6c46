"""Noise-reduction methods vs Whisper WER: the LibriVox clips of pocketsphinx-testdata + a real noise
recording at 5 dB SNR, 5 starting points in the noise, Whisper base in-process (the engine's ASREngine).

Usage: ~/.avatar/venv/bin/python scripts/denoise_experiment.py [NOISE.wav]
       (default noise: /usr/share/games/colobot/sounds/sound044.wav, Debian colobot-common-sounds)

Optional methods run only when their package is installed (not in the product's requirements):
webrtc-noise-gain (WebRTC NS), pyrnnoise (RNNoise). The results of one run are in docs/speech.md.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
from avatar_engine.asr import ASREngine, reduce_noise  # noqa: E402

RATE = 16000
CLIPS_DIR = "/usr/share/pocketsphinx/test/data/librivox/"
OFFSETS = [0, 9000, 21000, 33000, 45000]


def load(path):
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768


def words(text):
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def edits(ref, hyp):
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        new = [i] + [0] * len(hyp)
        for j in range(1, len(hyp) + 1):
            new[j] = min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ref[i - 1] != hyp[j - 1]))
        row = new
    return row[-1]


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def main():
    noise = load(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/games/colobot/sounds/sound044.wav")
    lines = open(CLIPS_DIR + "transcription").read().strip().split("\n")
    clips = [(load(CLIPS_DIR + re.search(r"\((.*)\)", l).group(1) + ".wav"), re.sub(r"</?s>|\(.*\)", "", l).strip())
             for l in lines]
    engine = ASREngine(Path.home() / ".avatar/models/whisper-base", cpu_threads=2, short_window=True)
    engine.load()

    def gate(audio, profile, **kw):
        import noisereduce
        return noisereduce.reduce_noise(y=audio, y_noise=profile, sr=RATE, n_jobs=1, **kw)

    methods = {
        "off": None,
        "non-stationary gate 80 % (no profile; the earlier method)":
            lambda a, p: gate(a, None, stationary=False, prop_decrease=0.8),
        "stationary gate 80 %, profile = 1 s of the noise (what a session sends)":
            lambda a, p: reduce_noise(a, p, "given")[0],
        "stationary gate 100 %, same profile": lambda a, p: gate(a, p, stationary=True, prop_decrease=1.0),
        "stationary gate 50 %, same profile": lambda a, p: gate(a, p, stationary=True, prop_decrease=0.5),
        "stationary gate 80 %, profile = the clip's pauses (engine default)":
            lambda a, p: reduce_noise(a, *engine.noise_profile(a, None))[0],
    }
    try:
        from webrtc_noise_gain import AudioProcessor

        def webrtc(a, _p, level=2):
            proc = AudioProcessor(0, level)
            pcm = (np.clip(a, -1, 1) * 32767).astype(np.int16)
            pcm = np.concatenate([pcm, np.zeros(-len(pcm) % 160, np.int16)])
            out = [np.frombuffer(proc.Process10ms(pcm[i:i + 160].tobytes()).audio, np.int16) for i in range(0, len(pcm), 160)]
            return (np.concatenate(out).astype(np.float32) / 32768)[: len(a)]
        methods["WebRTC NS level 2 (webrtc-noise-gain)"] = webrtc
    except ImportError:
        pass

    for name, method in methods.items():
        errors = total = 0
        for offset in OFFSETS:
            for speech, text in clips:
                bed = noise[(np.arange(len(speech)) + offset) % len(noise)]
                gain = rms(speech) / max(rms(bed), 1e-9) / 10 ** (5 / 20)
                mixed = (speech + gain * bed).astype(np.float32)
                profile = (gain * noise[(np.arange(RATE) + offset + len(noise) // 2) % len(noise)]).astype(np.float32)
                audio = mixed if method is None else np.asarray(method(mixed, profile), dtype=np.float32)
                heard = engine._run(audio, language="en", temperature=None, prompt=None)["text"]
                errors += edits(words(text), words(heard))
                total += len(words(text))
        print(f"{name}: WER {100 * errors / total:.1f} % ({errors}/{total})", flush=True)


if __name__ == "__main__":
    main()
