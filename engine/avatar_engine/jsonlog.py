"""Logging to stderr as one JSON object per line, including output of native libraries.

Native code (MediaPipe/absl, TFLite, onnxruntime) writes plain text straight to file
descriptor 2.  `install()` points fd 2 at a pipe; a pump thread wraps every plain line as
{"logger": "native", ...} and passes lines that already are JSON objects (e.g. from the
Piper worker process, which inherits fd 2) through unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

_installed = False


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {"ts": _now(), "level": record.levelname, "logger": record.name,
                               "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            obj["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            obj["traceback"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def _pump(read_fd: int, out: TextIO) -> None:
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as src:
        for line in src:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("{") and line.endswith("}"):
                try:
                    json.loads(line)
                    out.write(line + "\n")
                    out.flush()
                    continue
                except ValueError:
                    pass
            out.write(json.dumps({"ts": _now(), "level": "INFO", "logger": "native", "msg": line},
                                 ensure_ascii=False) + "\n")
            out.flush()


def install(level: str = "INFO", capture_native: bool = True) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    # Our own records go to a private duplicate of the original stderr.
    out = os.fdopen(os.dup(2), "w", encoding="utf-8", buffering=1)
    if capture_native:
        r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        sys.stderr = os.fdopen(2, "w", encoding="utf-8", buffering=1, closefd=False)
        threading.Thread(target=_pump, args=(r, out), name="stderr-json", daemon=True).start()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the app logs requests itself
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    logging.captureWarnings(True)
