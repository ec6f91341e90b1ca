"""Stopping a training run cleanly: SIGINT/SIGTERM, or a pause the user asked for.

A signal only raises a flag. The trainer looks at it between batches, so the
state it saves (`last` weights, optimizer, scheduler, RNG, position in the epoch)
is always whole; then it raises `TrainingStopped` and the script exits with
128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), having registered nothing.
A second Ctrl-C stops at once, for when saving itself hangs.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """Training ended before its last epoch on purpose; `last` holds everything needed to resume."""

    def __init__(self, reason: str, exit_code: int, run_dir=None):
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.run_dir = run_dir


class StopRequest:
    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "none"

    def stopped(self, run_dir) -> TrainingStopped:
        return TrainingStopped(f"received {self.name}", 128 + int(self.signum or 0), run_dir)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn SIGINT/SIGTERM into a StopRequest for the duration; handlers are restored afterwards."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be set from the main thread
        return

    def handler(signum, _frame):
        if request and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
