"""Progress lines that stay readable in a log file (no carriage returns, no terminal needed)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints `label: done/total (pct%) elapsed` every `every_s` seconds and at the end.

    Usage: `p = Progress("features", n); p.update(k); ...; p.close()`.
    """

    def __init__(self, label: str, total: int, every_s: float = 10.0, stream=None, enabled: bool = True):
        self.label, self.total, self.every_s = label, max(int(total), 0), every_s
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            self._print(now)

    def close(self) -> None:
        if self.enabled:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        print(f"[domainssl] {self.label}: {self.done}/{self.total} ({pct:.0f}%) {now - self.start:.1f}s",
              file=self.stream, flush=True)
