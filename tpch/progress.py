"""Progress of long commands (`flocksql tpch gen|bench|micro`) on stderr: a bar on a terminal, and
one line per step where stderr is not a terminal (a log file, CI), so that a slow step shows which
one it is:

    benchmark [3/44] Q2 flocksql@2
"""
from __future__ import annotations

import sys
import time

import click


class Progress:
    """`step(what)` as each step starts; `close()` (or leaving the `with`) at the end. Disabled, it
    says nothing."""

    def __init__(self, label: str, total: int, enabled: bool = True, stream=None):
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._started = time.perf_counter()
        self._bar = None
        self._tty = enabled and self.stream.isatty()
        if self._tty:
            self._bar = click.progressbar(length=total, label=label, show_pos=True, file=self.stream,
                                          item_show_func=lambda s: s or "")
            self._bar.__enter__()

    def step(self, what: str, count: int = 1) -> None:
        """`count` steps, named `what`, start now; the steps before them are done."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self.done - self._bar.pos)
            self._bar.current_item = what
            self._bar.render_progress()
        else:
            span = f"{self.done + 1}" if count == 1 else f"{self.done + 1}-{self.done + count}"
            click.echo(f"{self.label} [{span}/{self.total}] {what}", file=self.stream)
        self.done += count

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self.total - self._bar.pos)
            self._bar.__exit__(None, None, None)
            self._bar = None
        else:
            click.echo(f"{self.label}: {self.done} steps in {time.perf_counter() - self._started:.1f} s",
                       file=self.stream)
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
