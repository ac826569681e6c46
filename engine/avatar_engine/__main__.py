"""python -m avatar_engine --host 127.0.0.1 --port N --models-dir DIR"""

from __future__ import annotations

import os

# Nothing in this process may try the network (Hugging Face hub lookups etc.).
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GLOG_minloglevel", "1")
# CTranslate2's OpenMP threads sleep instead of spin-waiting: on a 2-core machine shared with
# other CPU-heavy processes (Swift build, LLM) spinning made some transcriptions 10-20x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avatar_engine",
                                     description="Avatar engine host: local ASR, TTS and face landmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--models-dir", type=Path, required=True,
                        help="folder prepared by `python -m avatar_engine.provision`")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 2),
                        help="CPU threads for speech recognition (default: min(4, cores))")
    parser.add_argument("--beam-size", type=int, default=2, help="Whisper beam size (default 2)")
    parser.add_argument("--asr-window", choices=("short", "full"), default="short",
                        help="Whisper encoder window: 'short' = the clip + 1 s, at least 8 s (fast for short "
                             "utterances; a decode that looks looped is redone with 30 s), "
                             "'full' = the model's 30 s window")
    parser.add_argument("--max-upload-mb", type=float, default=50.0)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    # A parent runtime (e.g. Swift's service lifecycle) may leave signals blocked or ignored, and
    # both survive exec: then SIGTERM (or the reaper's parent-death signal) would never stop us.
    import signal
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)

    from . import jsonlog
    jsonlog.install(args.log_level)

    import logging
    import uvicorn

    from . import __version__
    from .app import create_app

    log = logging.getLogger("avatar_engine")
    log.info("starting", extra={"fields": {"version": __version__, "host": args.host, "port": args.port,
                                           "models_dir": str(args.models_dir.expanduser().resolve()),
                                           "threads": args.threads, "beam_size": args.beam_size,
                                           "pid": os.getpid()}})
    app = create_app(args.models_dir, cpu_threads=max(1, args.threads), beam_size=max(1, args.beam_size),
                     asr_short_window=args.asr_window == "short",
                     max_upload=int(args.max_upload_mb * 1024 * 1024))
    # Keep-alive longer than the Swift client's pool keeps an idle connection (AsyncHTTPClient: 60 s). With
    # uvicorn's 5 s the server closed connections the client still meant to reuse, and a request written at
    # that moment failed with "I/O on closed channel".
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_config=None,
                log_level=args.log_level.lower(), access_log=False, server_header=False,
                timeout_keep_alive=75)
    return 0


if __name__ == "__main__":
    sys.exit(main())
