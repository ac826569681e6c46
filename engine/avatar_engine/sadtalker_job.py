"""Run one SadTalker job in its own process: ``python -m avatar_engine.sadtalker_job JOB.json``.

For GPU users who installed SadTalker themselves (a checkout plus its checkpoints, in an environment with
torch + CUDA). Avatar never ships or downloads SadTalker. The job runs SadTalker's own ``inference.py`` in a
child process, so every byte of GPU memory is returned to the driver when the job ends; while it runs, the
child's GPU memory is sampled with ``nvidia-smi`` and the peak reported.

JOB.json: {"checkout", "checkpoints", "photo", "audio", "output", "size": 256, "preprocess": "crop",
           "enhancer": null, "timeout": 1800}
Prints one JSON line: {"ok": true, "output", "seconds", "peak_gpu_mib"} or
                      {"ok": false, "code": "not_installed"|"failed"|"timeout", "message"}.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """SadTalker dies with this job, and sees signals normally (a parent may have left them blocked)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _reply(**fields: object) -> int:
    print(json.dumps(fields), flush=True)
    return 0 if fields.get("ok") else 1


def _gpu_mib(pid: int) -> int:
    """GPU memory of `pid` and its children per nvidia-smi, 0 when there is no NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    total = 0
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[0]) >= pid:
            total += int(parts[1])
    return total


def run(job: dict) -> int:
    checkout = job.get("checkout") or ""
    checkpoints = job.get("checkpoints") or os.path.join(checkout, "checkpoints")
    if not os.path.isfile(os.path.join(checkout, "inference.py")):
        return _reply(ok=False, code="not_installed",
                      message=f"no SadTalker checkout at '{checkout}' (inference.py missing); set AVATAR_SADTALKER_DIR")
    if not os.path.isdir(checkpoints) or not os.listdir(checkpoints):
        return _reply(ok=False, code="not_installed",
                      message=f"no SadTalker checkpoints in '{checkpoints}'; download them as SadTalker's README says")
    result_dir = tempfile.mkdtemp(prefix="avatar-sadtalker-")
    command = [sys.executable, "inference.py", "--driven_audio", job["audio"], "--source_image", job["photo"],
               "--result_dir", result_dir, "--checkpoint_dir", checkpoints,
               "--size", str(job.get("size", 256)), "--preprocess", job.get("preprocess", "crop")]
    if job.get("enhancer"):
        command += ["--enhancer", job["enhancer"]]
    started = time.monotonic()
    peak = 0
    with open(os.path.join(result_dir, "sadtalker.log"), "w") as log:
        child = subprocess.Popen(command, cwd=checkout, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        deadline = started + float(job.get("timeout", 1800))
        while child.poll() is None:
            peak = max(peak, _gpu_mib(child.pid))
            if time.monotonic() > deadline:
                child.kill()
                child.wait()
                return _reply(ok=False, code="timeout", message=f"SadTalker took longer than {job.get('timeout', 1800)} s")
            time.sleep(0.5)
    if child.returncode != 0:
        with open(os.path.join(result_dir, "sadtalker.log")) as log:
            tail = log.read()[-400:]
        return _reply(ok=False, code="failed", message=f"SadTalker exited with {child.returncode}: {tail}")
    videos = sorted(glob.glob(os.path.join(result_dir, "**", "*.mp4"), recursive=True), key=os.path.getmtime)
    if not videos:
        return _reply(ok=False, code="failed", message="SadTalker finished without writing a video")
    shutil.move(videos[-1], job["output"])
    shutil.rmtree(result_dir, ignore_errors=True)
    return _reply(ok=True, output=job["output"], seconds=round(time.monotonic() - started, 2), peak_gpu_mib=peak)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m avatar_engine.sadtalker_job JOB.json", file=sys.stderr)
        return 2
    with open(argv[0]) as handle:
        return run(json.load(handle))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
