"""Progress of long work: tqdm's bar on a terminal, plain lines in logs.

A bar redraws itself with carriage returns, which a log file keeps as one
long garbled line; so where the stream is not a terminal, :class:`Progress`
prints a plain line at every tenth of the work (and at the end) instead.
"""
from __future__ import annotations

import os
import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _width(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class Progress:
    """Count ``total`` units of work on ``file`` (stderr by default).

    Args:
        total: units of work (steps, images, sections); >= 0.
        description: what is counted, e.g. ``"optimize-tables"``.
        unit: the unit's name in the lines, e.g. ``"step"``.
        file: the stream; a terminal gets tqdm's bar, anything else plain lines.
        start: units already done (a resumed run).
        lines: where the stream is not a terminal, print the plain lines (else nothing).

    Example:
        >>> import io
        >>> log = io.StringIO()
        >>> with Progress(20, "learning", unit="step", file=log) as p:
        ...     for _ in range(20):
        ...         p.update(loss="0.5")
        >>> log.getvalue().splitlines()[0].startswith("learning: step 2/20 (10%)")
        True
        >>> "\\r" in log.getvalue(), len(log.getvalue().splitlines())
        (False, 10)
    """

    def __init__(self, total: int, description: str, *, unit: str = "step", file=None, start: int = 0, lines: bool = True):
        self.total, self.description, self.unit, self.done = int(total), description, unit, int(start)
        self.file = sys.stderr if file is None else file
        self._began, self._first = time.perf_counter(), int(start)
        self._shown = self._tenth(self.done)
        self._bar, self._lines = None, lines
        isatty = getattr(self.file, "isatty", None)
        if isatty is not None and isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # lines, then
                pass
            else:
                # a terminal that reports no size (0x0: script, some CI consoles)
                # would get no bar at all from tqdm: 80x24 there
                sized = _width(self.file) > 0
                self._bar = tqdm(total=self.total, initial=self.done, desc=description, unit=unit, file=self.file,
                                 dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 24, leave=True)

    def _tenth(self, done: int) -> int:
        return done * 10 // self.total if self.total else 10

    def update(self, n: int = 1, **values) -> None:
        """``n`` more units done; ``values`` (name: text) are shown beside the count."""
        self.done += n
        shown = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())
        if self._bar is not None:
            if shown:
                self._bar.set_postfix_str(shown, refresh=False)
            self._bar.update(n)
            return
        tenth = self._tenth(self.done)
        if not self._lines or (tenth == self._shown and self.done != self.total):
            return
        self._shown = tenth
        elapsed = time.perf_counter() - self._began
        rate = (self.done - self._first) / elapsed if elapsed > 0 else 0.0
        left = f", {_duration((self.total - self.done) / rate)} left" if rate > 0 and self.done < self.total else ""
        percent = f" ({100 * self.done // self.total}%)" if self.total else ""
        line = f"{self.description}: {self.unit} {self.done}/{self.total}{percent}"
        print(f"{line}{'  ' + shown if shown else ''}  [{_duration(elapsed)}{left}]", file=self.file, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
