"""A one-line progress report for long loops: count, rate and ETA.

On a terminal the line is redrawn in place; in a log (CI, a pipe) a new line
is printed every few seconds, so logs stay short.
"""

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Reports `label done/total (extra), rate unit/s, ETA s` on stderr.

    Args:
      label: what is being done, e.g. "aligning".
      total: the number of items.
      unit: the items' unit for the rate, e.g. "img".
    """

    def __init__(self, label: str, total: int, unit: str = "it", stream: TextIO | None = None):
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = self.last = time.monotonic()

    def update(self, done: int, extra: str = "") -> None:
        """Reports `done` items; throttled, except for the last one."""
        now = time.monotonic()
        if done < self.total and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        extra = f" ({extra})" if extra else ""
        line = (f"{self.label} {done}/{self.total}{extra}, {rate:.1f} {self.unit}/s, "
                f"ETA {eta:.0f} s")
        end = "\n" if done == self.total or not self.tty else ""
        print(f"\r{line}" if self.tty else line, end=end, file=self.stream, flush=True)


class StageProgress:
    """A `(stage, done, total)` callback that starts a new `Progress` line per stage.

    Args:
      describe: stage -> (label, unit) of its line, e.g. "train" -> ("writing train", "pair").
    """

    def __init__(self, describe: Callable[[str], tuple[str, str]],
                 stream: TextIO | None = None):
        self.describe, self.stream = describe, stream
        self.stage, self.line = None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            label, unit = self.describe(stage)
            self.stage, self.line = stage, Progress(label, total, unit, self.stream)
        self.line.update(done)
