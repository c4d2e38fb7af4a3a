"""Background jobs: run long core work in a thread, observe its progress, cancel it.

The app starts a ``BackgroundJob`` and polls ``snapshot()``; the job's function receives
``on_progress`` and ``cancel`` like every long core function.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import Cancelled, DDBError
from .progress import CancelToken, Progress


@dataclass(frozen=True)
class JobSnapshot:
    name: str
    state: str  # running / done / failed / cancelled
    progress: Optional[Progress]
    error: Optional[str]
    started: float
    finished: Optional[float]


class BackgroundJob:
    def __init__(self, name: str, fn: Callable[..., Any]):
        self.name, self._fn = name, fn
        self.cancel_token = CancelToken()
        self._progress: Optional[Progress] = None
        self._state, self._error, self.result = "running", None, None
        self._started, self._finished = time.time(), None
        self._thread = threading.Thread(target=self._run, name=f"job-{name}", daemon=True)
        self._thread.start()

    def _on_progress(self, p: Progress) -> None:
        self._progress = p

    def _run(self) -> None:
        try:
            self.result = self._fn(on_progress=self._on_progress, cancel=self.cancel_token)
            self._state = "done"
        except Cancelled as e:
            self._state, self._error = "cancelled", str(e)
        except DDBError as e:
            self._state, self._error = "failed", str(e)
        except Exception as e:  # an unexpected error still reaches the user, in plain words
            self._state, self._error = "failed", f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            self._finished = time.time()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._state == "running"

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(self.name, self._state, self._progress, self._error, self._started, self._finished)
