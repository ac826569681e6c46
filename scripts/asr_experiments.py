"""ASR experiments behind the engine's settings, Whisper base in-process (the engine's ASREngine).

  ~/.avatar/venv/bin/python scripts/asr_experiments.py denoise [NOISE.wav]
      Noise-reduction methods vs WER: the LibriVox clips of pocketsphinx-testdata + a real noise
      recording at 5 dB SNR, 5 starting points in the noise (default noise:
      /usr/share/games/colobot/sounds/sound044.wav, Debian colobot-common-sounds). WebRTC NS runs only
      when webrtc-noise-gain is installed (it is not in the product's requirements).
  ~/.avatar/venv/bin/python scripts/asr_experiments.py window
      The short encoder window's minimum length vs WER and time: 18 short synthesised sentences
      (Piper Joe, Festival slt and msu_ru_nsh, in-process) + the LibriVox clips.
  ~/.avatar/venv/bin/python scripts/asr_experiments.py beam
      Beam 2 (the default) vs greedy decoding on the same sentences and clips: time and WER.
  ~/.avatar/venv/bin/python scripts/asr_experiments.py clean
      Noise reduction on clean speech (no noise added).

The results of one run are in docs/speech.md.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
import avatar_engine.asr as asr  # noqa: E402
from avatar_engine.asr import ASREngine, reduce_noise  # noqa: E402

RATE = 16000
CLIPS_DIR = "/usr/share/pocketsphinx/test/data/librivox/"
OFFSETS = [0, 9000, 21000, 33000, 45000]


def load(path):
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768


def words(text):
    return re.sub(r"[^\w' ]", " ", text.lower().replace("ё", "е")).split()


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


def librivox():
    lines = open(CLIPS_DIR + "transcription").read().strip().split("\n")
    return [(load(CLIPS_DIR + re.search(r"\((.*)\)", l).group(1) + ".wav"), re.sub(r"</?s>|\(.*\)", "", l).strip(), "en")
            for l in lines]


def recognizer(short_window=True):
    engine = ASREngine(Path.home() / ".avatar/models/whisper-base", cpu_threads=2, short_window=short_window)
    engine.load()
    return engine


def denoise(noise_path):
    noise = load(noise_path)
    clips = librivox()
    engine = recognizer()

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
            for speech, text, _ in clips:
                bed = noise[(np.arange(len(speech)) + offset) % len(noise)]
                gain = rms(speech) / max(rms(bed), 1e-9) / 10 ** (5 / 20)
                mixed = (speech + gain * bed).astype(np.float32)
                profile = (gain * noise[(np.arange(RATE) + offset + len(noise) // 2) % len(noise)]).astype(np.float32)
                audio = mixed if method is None else np.asarray(method(mixed, profile), dtype=np.float32)
                heard = engine._run(audio, language="en", temperature=None, prompt=None)["text"]
                errors += edits(words(text), words(heard))
                total += len(words(text))
        print(f"{name}: WER {100 * errors / total:.1f} % ({errors}/{total})", flush=True)


SENTENCES = {
    "en_US-joe-medium": ["Hello, it is nice to meet you.", "The weather is lovely today, so we could walk to the park after lunch.",
                         "What would you like to do?", "Yes.", "Thank you very much.", "Tell me a story.", "How are you?", "Good morning!"],
    "slt": ["Hello, it is nice to meet you.", "What would you like to do?", "How are you?", "Tell me a story."],
    "msu_ru_nsh": ["Привет, я рада тебя видеть.", "Сегодня тёплый солнечный день.", "Давай поговорим о книгах.", "Как дела?",
                   "Спасибо большое.", "Расскажи сказку."],
}


def clean():
    """Noise reduction on clean speech (the LibriVox clips, profile = the clip's pauses)."""
    engine = recognizer()
    for on in (False, True):
        errors = total = 0
        for audio, text, language in librivox():
            if on:
                audio = reduce_noise(audio, *engine.noise_profile(audio, None))[0]
            heard = engine._run(audio, language=language, temperature=None, prompt=None)["text"]
            errors += edits(words(text), words(heard))
            total += len(words(text))
        print(f"clean speech, noise reduction {'on' if on else 'off'}: WER {100 * errors / total:.1f} % ({errors}/{total})")


def synthesised_sentences():
    """SENTENCES spoken by the engine's own voices in-process, at 16 kHz: [(samples, text, language)]."""
    from scipy.signal import resample_poly
    from avatar_engine.tts import TTSEngine

    tts = TTSEngine(Path.home() / ".avatar/models/piper")
    tts.load()
    sentences = []
    for voice_id, texts in SENTENCES.items():
        voice = tts.voices[voice_id]
        for text in texts:
            out = tts.synthesize(text, voice, 1.0)
            pcm = np.frombuffer(out.pcm, "<i2").astype(np.float32) / 32768
            g = np.gcd(RATE, out.sample_rate)
            sentences.append((resample_poly(pcm, RATE // g, out.sample_rate // g).astype(np.float32), text, voice.language))
    tts.close()
    return sentences


def score(engine, items, on_miss=None):
    """Whisper in-process on (audio, text, language) items: word errors, reference words, seconds."""
    import time
    errors = total = 0
    started = time.monotonic()
    for audio, text, language in items:
        heard = engine._run(audio, language=language, temperature=None, prompt=None)["text"]
        missed = edits(words(text), words(heard))
        errors += missed
        total += len(words(text))
        if missed and on_miss:
            on_miss(text, heard)
    return errors, total, time.monotonic() - started


def beam():
    """Whisper time and WER with beam 2 (the default) and greedy decoding, default window."""
    items = synthesised_sentences() + librivox()
    engine = recognizer()
    for size in (2, 1):
        engine.beam_size = size
        errors, total, seconds = score(engine, items)
        print(f"beam {size}: WER {100 * errors / total:.1f} % ({errors}/{total}), {seconds:.2f} s", flush=True)


def window():
    sentences = synthesised_sentences()
    clips = librivox()
    guard = asr.looks_looped

    def run(label, engine, minimum=None, guarded=False):
        if minimum is not None:
            asr.SHORT_WINDOW_MIN_S = minimum
        asr.looks_looped = guard if guarded else (lambda *_: False)
        rows = {}
        for name, items in (("en", [s for s in sentences if s[2] == "en"]), ("ru", [s for s in sentences if s[2] == "ru"]),
                            ("librivox", clips)):
            def show(text, heard, name=name):
                if name == "ru":
                    print(f"    {label}: {text!r} heard as {heard!r}")
            errors, total, seconds = score(engine, items, on_miss=show)
            rows[name] = (100 * errors / total, seconds)
        print(f"{label}: " + ", ".join(f"{k} WER {w:.1f} % ({t:.2f} s)" for k, (w, t) in rows.items()), flush=True)

    short = recognizer(short_window=True)
    for minimum in (3, 5, 8):
        run(f"minimum {minimum} s, no loop guard", short, minimum)
    run("minimum 3 s + loop guard", short, 3, guarded=True)
    run("minimum 8 s + loop guard (default)", short, 8, guarded=True)
    run("full 30 s window", recognizer(short_window=False))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "window":
        window()
    elif len(sys.argv) > 1 and sys.argv[1] == "beam":
        beam()
    elif len(sys.argv) > 1 and sys.argv[1] == "clean":
        clean()
    elif len(sys.argv) > 1 and sys.argv[1] == "denoise":
        denoise(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/games/colobot/sounds/sound044.wav")
    else:
        sys.exit(__doc__)
