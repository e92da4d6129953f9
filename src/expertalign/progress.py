"""Progress lines for long jobs, so that ``tail -f`` on a job's log shows it is alive.

    >>> import logging
    >>> from expertalign.progress import ConceptProgress, Heartbeat, Progress
    >>> log = logging.getLogger("expertalign")
    >>> forward = Progress("forward pass", total=5000, unit="sentences", logger=log)
    >>> for batch in batches:
    ...     run(batch)
    ...     forward.advance(len(batch))  # a time check; a line at most every 30 s:
    ...     # "forward pass: 1200 of 5000 sentences, 41.3 sentences/s, elapsed 0:29, ETA 1:32"
    >>> forward.finish()                 # "forward pass: 5000 sentences in 2:01, 41.3 sentences/s"
    >>> concepts = ConceptProgress(total=12, unit="sentences", logger=log)
    >>> concepts.done("cat", 412)         # a line for each concept:
    ... # "concept 1 of 12 (cat): 412 sentences, 9.8 sentences/s, elapsed 0:42, ETA 7:42"
    >>> concepts.done("dog", 14, "in 2 rounds")  # "concept 2 of 12 (dog): 14 sentences in 2 rounds"
    >>> concepts.skipped("fox", "taken from an earlier job")  # counted, its time is not
    >>> beat = Heartbeat()               # the bare clock, for a step that composes its own line
    >>> if beat.due(): log.info("round 2: 7 of 14 sentences so far")

The heartbeat interval is ``$EXPERTALIGN_PROGRESS_SECONDS`` (default 30; 0 logs at every
``advance``), read when a tracker is made, so a test can set it small for one subprocess. A
tracker only reads the clock (``time.monotonic``) on each call, and callers call it once per
batch, concept or generation check (never per token), so it costs nothing next to the work.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

__all__ = [
    "PROGRESS_SECONDS_ENV",
    "DEFAULT_PROGRESS_SECONDS",
    "ConceptProgress",
    "Heartbeat",
    "Progress",
    "format_duration",
    "format_rate",
    "progress_seconds",
]

PROGRESS_SECONDS_ENV = "EXPERTALIGN_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 30.0

Clock = Callable[[], float]


def progress_seconds() -> float:
    """Seconds between heartbeat lines: ``$EXPERTALIGN_PROGRESS_SECONDS``, else 30."""
    raw = os.environ.get(PROGRESS_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_PROGRESS_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(
            f"{PROGRESS_SECONDS_ENV}={raw!r} is not a number of seconds (e.g. 30 or 0.5)"
        ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{PROGRESS_SECONDS_ENV}={raw!r} must be a finite number >= 0")
    return seconds


def format_duration(seconds: float) -> str:
    """``0:42``, ``4:10``, ``1:02:03`` (whole seconds; ``?`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(count: float, seconds: float) -> str:
    """``count / seconds`` with one decimal, or two significant digits below 1 (``0.052``)."""
    if seconds <= 0:
        return "?"
    rate = count / seconds
    return f"{rate:.1f}" if rate >= 1 else f"{rate:.2g}"


class Heartbeat:
    """True from :meth:`due` at most once every ``seconds`` (default :func:`progress_seconds`),
    the first time ``seconds`` after it was made; ``elapsed`` is the time since then."""

    def __init__(self, seconds: float | None = None, *, clock: Clock = time.monotonic) -> None:
        self.seconds = progress_seconds() if seconds is None else float(seconds)
        if self.seconds < 0:
            raise ValueError(f"heartbeat seconds must be >= 0, got {self.seconds}")
        self._clock = clock
        self.start = clock()
        self._last = self.start

    @property
    def elapsed(self) -> float:
        return self._clock() - self.start

    def due(self) -> bool:
        now = self._clock()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True


class Progress:
    """``done`` of ``total`` ``unit`` of one long step (``what``): a heartbeat line from
    :meth:`advance` at most every ``seconds``, and a closing line from :meth:`finish`."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        *,
        logger: logging.Logger,
        seconds: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.what, self.total, self.unit, self.done = what, int(total), unit, 0
        self._log = logger
        self._beat = Heartbeat(seconds, clock=clock)

    @property
    def elapsed(self) -> float:
        return self._beat.elapsed

    def status(self) -> str:
        """``1200 of 5000 sentences, 41.3 sentences/s, elapsed 0:29, ETA 1:32``"""
        elapsed = self.elapsed
        eta = elapsed / self.done * (self.total - self.done) if self.done else math.nan
        return (
            f"{self.done} of {self.total} {self.unit}, "
            f"{format_rate(self.done, elapsed)} {self.unit}/s, "
            f"elapsed {format_duration(elapsed)}, ETA {format_duration(eta)}"
        )

    def advance(self, count: int = 1) -> None:
        """``count`` more done; logs :meth:`status` when the heartbeat is due."""
        self.done += int(count)
        if self._beat.due():
            self._log.info("%s: %s", self.what, self.status())

    def finish(self) -> None:
        """Logs ``forward pass: 5000 sentences in 2:01, 41.3 sentences/s``."""
        elapsed = self.elapsed
        self._log.info(
            "%s: %d %s in %s, %s %s/s",
            self.what,
            self.done,
            self.unit,
            format_duration(elapsed),
            format_rate(self.done, elapsed),
            self.unit,
        )


class ConceptProgress:
    """One line per finished concept of a job: its number of ``total``, its ``count`` of
    ``unit``, the rate over the job so far, elapsed time and ETA.

    The rate and the ETA count only the concepts made here (:meth:`done`), not those
    :meth:`skipped` (taken from an earlier run: they cost next to nothing, and counting them
    would make the remaining ones look cheap).
    """

    def __init__(
        self,
        total: int,
        unit: str,
        *,
        logger: logging.Logger,
        what: str = "concept",
        clock: Clock = time.monotonic,
    ) -> None:
        self.total, self.unit, self.what = int(total), unit, what
        self.finished = 0
        self._log, self._clock = logger, clock
        self.start = self._last = clock()
        self._made, self._count, self._made_seconds = 0, 0, 0.0
        self._step_seconds = 0.0

    def _next(self, name: str) -> str:
        now = self._clock()
        seconds, self._last = now - self._last, now
        self.finished += 1
        self._step_seconds = seconds
        return f"{self.what} {self.finished} of {self.total} ({name})"

    def done(self, name: str, count: int, detail: str = "") -> None:
        """Logs ``concept 3 of 12 (cat): 412 sentences[ detail], 9.8 sentences/s, elapsed 0:42,
        ETA 4:10`` for a concept made since the previous line."""
        head = self._next(name)
        self._made += 1
        self._count += int(count)
        self._made_seconds += self._step_seconds
        remaining = self.total - self.finished
        eta = self._made_seconds / self._made * remaining
        self._log.info(
            "%s: %d %s%s, %s %s/s, elapsed %s, ETA %s",
            head,
            count,
            self.unit,
            f" {detail}" if detail else "",
            format_rate(self._count, self._made_seconds),
            self.unit,
            format_duration(self._clock() - self.start),
            format_duration(eta),
        )

    def skipped(self, name: str, why: str) -> None:
        """Logs ``concept 1 of 12 (cat): <why>`` for a concept not made here."""
        self._log.info("%s: %s", self._next(name), why)
