"""Progress on the terminal for long work (``k8n up``'s start steps, ``k8n apply --wait``): on a terminal, lines
updated in place; otherwise (a pipe, a CI log) plain lines, each printed once when it changes."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

_UP = "\x1b[{}F"  # cursor to the start of the line N lines up
_CLEAR = "\x1b[2K"  # erase the line


def is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def seconds(t: float) -> str:
    return f"{t:.1f}s" if t < 60 else f"{int(t // 60)}m{int(t % 60):02d}s"


def _fit(text: str, suffix: str = "") -> str:
    """``text`` cut to the terminal's width (a wrapped line would break redrawing in place), ``suffix`` kept."""
    width = shutil.get_terminal_size((100, 24)).columns - 1 - len(suffix)
    return (text if len(text) <= width else text[:max(width - 1, 1)] + "…") + suffix


class Board:
    """One line per item. :meth:`set` gives an item's text and a ``suffix`` that may change without counting
    as a change (an elapsed time). On a terminal :meth:`draw` redraws every line in place; otherwise each
    changed text is printed once, as it changes, with its suffix."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = is_tty(self.out) if tty is None else tty
        self.rows: dict[str, tuple[str, str]] = {}
        self._drawn = 0

    def set(self, key: str, text: str, suffix: str = "") -> None:
        old = self.rows.get(key)
        self.rows[key] = (text, suffix)
        if not self.tty and (old is None or old[0] != text):
            print(f"{text}{suffix}", file=self.out, flush=True)

    def draw(self) -> None:
        if not self.tty:
            return
        head = _UP.format(self._drawn) if self._drawn else ""
        body = "".join(f"{_CLEAR}{_fit(t, s)}\n" for t, s in self.rows.values())
        self.out.write(head + body)
        self.out.flush()
        self._drawn = len(self.rows)


class Steps:
    """Start steps one after another: on a terminal the running step shows (``…``) until it is done or failed;
    a done step prints ``NAME  TIME  DETAIL``, a failed one ``NAME  FAILED after TIME: REASON``."""

    WIDTH = 20

    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = is_tty(self.out) if tty is None else tty
        self.name: str | None = None
        self.start = 0.0

    def begin(self, name: str, since: float | None = None) -> None:
        """Step ``name`` starts (its time counts from ``since``, a ``time.monotonic()``, when given)."""
        self.name, self.start = name, time.monotonic() if since is None else since
        if self.tty:
            self.out.write(_fit(f"  … {name}") + "\r")
            self.out.flush()

    def _line(self, text: str) -> None:
        self.out.write((_CLEAR if self.tty else "") + text + "\n")
        self.out.flush()
        self.name = None

    def done(self, detail: str = "", at: float | None = None) -> float:
        """The step completed (at ``at``, a ``time.monotonic()``, when given; else now)."""
        took = (time.monotonic() if at is None else at) - self.start
        self._line(f"  {self.name:<{self.WIDTH}} {seconds(took):>6}  {detail}".rstrip())
        return took

    def failed(self, reason: str) -> None:
        took = time.monotonic() - self.start
        self._line(f"  {self.name:<{self.WIDTH}} FAILED after {seconds(took)}: {reason}")
