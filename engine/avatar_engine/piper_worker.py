"""Piper TTS worker, run as a separate process (piper-tts is GPL-3.0: keep it out of the host process).

    python -m avatar_engine.piper_worker --model X.onnx --config X.onnx.json

Protocol (binary-safe, one request at a time):
  start-up  -> stdout: {"ready": true, "sample_rate": 22050, "length_scale": 1.0}\\n
  request   <- stdin : {"text": "...", "length_scale": 1.0}\\n
  response  -> stdout: {"ok": true, "sample_rate": N, "nbytes": M}\\n + M bytes of s16le mono PCM
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

    voice = PiperVoice.load(args.model, config_path=args.config)
    base_scale = float(voice.config.length_scale or 1.0)
    sr = int(voice.config.sample_rate)
    # Warm up the ONNX session.
    for _ in voice.synthesize("Ready."):
        pass
    proto.write((json.dumps({"ready": True, "sample_rate": sr, "length_scale": base_scale}) + "\n").encode())

    while True:
        line = inp.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
            text = str(req["text"])
            scale = float(req.get("length_scale") or base_scale)
            cfg = SynthesisConfig(length_scale=scale)
            chunks = [c.audio_int16_bytes for c in voice.synthesize(text, syn_config=cfg)]
            pcm = b"".join(chunks)
            proto.write((json.dumps({"ok": True, "sample_rate": sr, "nbytes": len(pcm)}) + "\n").encode())
            proto.write(pcm)
        except Exception as exc:  # report, keep serving
            _log("synthesis failed", error=f"{exc.__class__.__name__}: {exc}")
            proto.write((json.dumps({"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
