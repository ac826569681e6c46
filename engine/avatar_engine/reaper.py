"""Run a command as a child that never outlives Avatar.

``python -m avatar_engine.reaper -- CMD ARGS...`` starts CMD, forwards SIGTERM/SIGINT to it, exits with
its status, and stops it if Avatar (our parent) goes away without stopping us — even by SIGKILL. The
child also gets PR_SET_PDEATHSIG, so killing this reaper takes the child down with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _reset_signals() -> None:
    """Undo what the parent's runtime may have left us: a blocked mask and ignored dispositions.

    Both survive exec. Swift's service lifecycle ignores SIGINT/SIGTERM and its threads may block them,
    so without this neither we nor the engine would ever see a shutdown request.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


def _prepare_child() -> None:
    _reset_signals()
    _die_with_parent()


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m avatar_engine.reaper -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    # Not PR_SET_PDEATHSIG on ourselves: it fires when the *thread* that spawned us exits, and the
    # parent's threads are not ours to reason about. Polling the parent id is exact enough (0.5 s).
    parent = os.getppid()
    _reset_signals()
    try:
        child = subprocess.Popen(argv, preexec_fn=_prepare_child)
    except OSError as error:
        print(f"reaper: cannot start {argv[0]}: {error}", file=sys.stderr)
        return 127

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            code = child.wait(timeout=0.5)
            return code if code >= 0 else 128 - code
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
