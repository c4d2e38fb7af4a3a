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
    """Computes rate and ETA for a stage and forwards reports to an optional callback.

    The stage shows its counter at once (``done`` of ``total``, before its first unit finishes). The
    rate counts from the first finished unit, not from the stage's start, so that loading a model or
    the data does not make the first estimates wrong; an ETA is given once ``MIN_UNITS`` units and
    ``MIN_SECONDS`` seconds are behind it, and it is the whole-stage average since then (steady, not
    the last unit's speed)."""

    MIN_UNITS, MIN_SECONDS = 3, 2.0

    def __init__(self, stage: str, total: int, on_progress: Optional[ProgressFn], start_done: int = 0):
        self.stage, self.total, self.on_progress = stage, total, on_progress
        self._first: Optional[tuple[float, int]] = None  # (time, done) at the first unit finished
        self.done = start_done
        if on_progress is not None:
            on_progress(Progress(stage, start_done, total, "starting"))

    def update(self, done: int, message: str = "") -> None:
        self.done = done
        if self.on_progress is None:
            return
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done)
        t1, d1 = self._first
        rate = eta = None
        if done - d1 >= self.MIN_UNITS and now - t1 >= self.MIN_SECONDS:
            rate = (done - d1) / (now - t1)
            eta = (self.total - done) / rate
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
