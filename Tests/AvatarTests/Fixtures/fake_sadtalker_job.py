"""A fake SadTalker job for the adapter's contract test: same JOB.json in, same JSON line out.

It does not animate anything: it muxes the photo as a still video with the audio (ffmpeg), so the adapter's
plumbing is tested end to end. FAKE_MODE=error|crash|hang|notinstalled injects faults.
"""
import json
import os
import subprocess
import sys
import time

job = json.load(open(sys.argv[1]))
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "notinstalled":
    print(json.dumps({"ok": False, "code": "not_installed", "message": "no SadTalker checkout at 'x'"}))
    sys.exit(1)
if mode == "error":
    print(json.dumps({"ok": False, "code": "failed", "message": "CUDA out of memory"}))
    sys.exit(1)
if mode == "crash":
    os._exit(9)
if mode == "hang":
    time.sleep(3600)
subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", job["photo"], "-i", job["audio"], "-shortest",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-vf", "scale=256:256",
                "-c:a", "aac", job["output"]], check=True)
print(json.dumps({"ok": True, "output": job["output"], "seconds": 0.5, "peak_gpu_mib": 0}))
