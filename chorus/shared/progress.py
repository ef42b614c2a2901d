"""A progress bar for long work that shows on a terminal and stays quiet in pipes and CI."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def _interactive(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("CI")


class Progress:
    """Report ``done`` out of ``total`` units (bytes, rows, blocks) at most ten times a second.

    Nothing is written unless the stream is a terminal and ``CI`` is unset, so logs and pipes stay clean.
    """

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _interactive(self.stream)
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        if self.total:
            frac = min(1.0, done / self.total)
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {frac:6.1%}")
        else:
            self.stream.write(f"\r{self.label} {done:,}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            seconds = time.monotonic() - self._start
            self.stream.write(f"\r{self.label} done in {seconds:.1f} s{' ' * 30}\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
