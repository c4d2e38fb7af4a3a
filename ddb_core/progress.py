"""Progress reporting and cancellation for long work.

Long core functions take ``on_progress: ProgressFn | None`` and ``cancel: CancelToken | None``.
The CLI adapts ``on_progress`` to a tqdm bar; the app adapts it to ``gr.Progress``. Work checks
``cancel.raise_if_cancelled()`` between units (batches, epochs), so a cancel never leaves a unit
half-written.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` units of ``stage``, with a free-text message."""

    stage: str
    done: int
    total: int
    message: str = ""
    rate: float | None = None  # units per second since the stage started
    eta_s: float | None = None  # seconds left at the current rate

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressFn = Callable[[Progress], None]


class ProgressTracker:
    """Computes rate and ETA for a stage and forwards reports to an optional callback."""

    def __init__(self, stage: str, total: int, on_progress: Optional[ProgressFn], start_done: int = 0):
        self.stage, self.total, self.on_progress = stage, total, on_progress
        self._t0, self._done0 = time.monotonic(), start_done
        self.done = start_done

    def update(self, done: int, message: str = "") -> None:
        self.done = done
        if self.on_progress is None:
            return
        elapsed = time.monotonic() - self._t0
        rate = (done - self._done0) / elapsed if elapsed > 0 and done > self._done0 else None
        eta = (self.total - done) / rate if rate else None
        self.on_progress(Progress(self.stage, done, self.total, message, rate, eta))


class CancelToken:
    """A flag another thread can set; work polls it between units."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, where: str = "") -> None:
        if self._event.is_set():
            raise Cancelled(f"cancelled{' ' + where if where else ''}; finished work is kept and the job can be resumed")


def check_cancel(cancel: Optional[CancelToken], where: str = "") -> None:
    if cancel is not None:
        cancel.raise_if_cancelled(where)
