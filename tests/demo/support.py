"""Running `shiftlab demo` as a subprocess and stopping it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def interrupt(proc: subprocess.Popen[str], grace: float = 30.0) -> None:
    """Stop a demo still running as Ctrl-C does (it stops its tasks and
    containers on the way out); SIGKILL to its process group if it has not
    ended within `grace` seconds (start it with start_new_session=True)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
