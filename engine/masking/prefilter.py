"""Native screening: one hyperscan database answers "could anything here need masking?".

``ValueMasker`` screens raw protocol bytes (a whole result, a DataRow, a value) with its
detectors' triggers before it runs any detector. In Python that screen is a regex search that
starts at nearly every digit and letter (a result of 1,000 rows took ~10 ms to screen, longer
than relaying it); hyperscan compiles the same triggers into one automaton, scanned in C at
memory speed, and stops at the first match.

Soundness comes first: a ``Prefilter`` may say "maybe" where the detectors then find nothing,
never "no" where one would find something. It is built from the same triggers as the Python
screen (``engine.masking.masker``), in forms without look-arounds, which hyperscan does not
support: each native form (``detectors.NATIVE_TRIGGERS``) matches wherever the trigger does,
its match starting at most a few bytes earlier, so that a match in a value alone is also a
match in the row or result around it. The encoded candidates (base64 and hex runs, ``%XX``)
are in the database too, so that values the detectors find only after decoding are screened
in. A trigger without a native form, or a detector without a trigger (a custom one), means
no prefilter at all: the masker keeps its Python screen, which answers the same.

Without hyperscan (not installed, a platform it does not build on, or ``GATEWATCH_NO_HYPERSCAN``
set to 1) ``build`` returns None and masking runs the Python screen: the same results, slower.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from threading import get_ident
from typing import Any

_hs: Any
try:  # an optional dependency: wheels exist for x86-64 Linux and macOS only
    _hs = importlib.import_module("hyperscan")
except ImportError:  # pragma: no cover - depends on the platform
    _hs = None

DISABLE_ENV = "GATEWATCH_NO_HYPERSCAN"
log = logging.getLogger(__name__)


def available() -> bool:
    """Whether native screening can be used here (installed, and not turned off)."""
    return _hs is not None and os.environ.get(DISABLE_ENV, "") not in ("1", "true", "yes")


class Prefilter:
    """A set of native trigger patterns, compiled into one database. Thread-safe: each thread
    scans with its own scratch space (hyperscan refuses a scratch in use by another scan).

    Compiling takes tens of milliseconds: with ``background`` it happens in a thread of its
    own (hyperscan lets the event loop run meanwhile), and until it is done ``compiled`` is
    False and ``first`` answers "maybe" for anything not empty (callers use their Python
    screen then)."""

    def __init__(self, expressions: Sequence[str], *, background: bool = False) -> None:
        assert _hs is not None
        self.expressions = tuple(expressions)
        self._db: Any = None
        self._done = threading.Event()
        self._scratches: dict[int, Any] = {}  # thread id → its scratch
        self._terminated: type[BaseException] = _hs.ScanTerminated
        if background:
            threading.Thread(target=self._compile, name="masking prefilter compile",
                             daemon=True).start()
        else:
            self._compile()

    def _compile(self) -> None:
        assert _hs is not None
        try:
            db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
            db.compile(expressions=[e.encode("ascii") for e in self.expressions],
                       ids=list(range(len(self.expressions))),
                       elements=len(self.expressions),
                       flags=[0] * len(self.expressions))
        except _hs.error as exc:  # a form hyperscan cannot compile: "maybe" for ever
            log.warning("masking: hyperscan cannot compile the prefilter (%s); results are "
                        "screened in Python", exc)
        else:
            self._db = db
        self._done.set()

    @property
    def compiled(self) -> bool:
        return self._db is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the database (tests, benchmarks); whether it is compiled."""
        self._done.wait(timeout)
        return self.compiled

    def first(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> int:
        """The end offset (in ``data``) of a match inside ``data[start:end]``, or -1 when there
        is none. Which match is not said: hyperscan does not promise to report the earliest.
        """
        db = self._db
        if db is None:  # not compiled (yet): anything may match
            stop = len(data) if end is None else end
            return stop if stop > start else -1
        view = data if start == 0 and end is None else memoryview(data)[start:end]
        scratch = self._scratches.get(get_ident())
        if scratch is None:
            scratch = self._new_scratch()
        found: list[int] = []
        try:
            db.scan(view, _stop, 0, found, scratch)
        except self._terminated:
            return start + found[0]
        return -1

    def _new_scratch(self) -> Any:
        assert _hs is not None
        scratch = self._scratches[get_ident()] = _hs.Scratch(self._db)
        return scratch

    def any(self, data: bytes | memoryview) -> bool:
        """Whether something in ``data`` matches a trigger (the screen's answer)."""
        return self.first(data) >= 0


def build(triggers: Sequence[str], native: Mapping[str, str], *,
          encoded: Sequence[str] = ()) -> Prefilter | None:
    """The prefilter of a masker's triggers, and of the encoded candidates' triggers (already
    native). A trigger is compiled in its native form when it has one, else as the plain
    strings it lists (``AKIA|ASIA``). None when native screening is not available, or a
    trigger is a regex without a native form."""
    if not available():
        return None
    forms: list[str] = []
    for trigger in triggers:
        form = native.get(trigger)
        if form is None:
            words = trigger.split("|")
            if not all(w and _META.isdisjoint(w) for w in words):
                return None
            form = "|".join(re.escape(w) for w in words)
        forms.append(form)
    forms += encoded
    if not forms:
        return None
    return _compiled(tuple(forms))


_META = frozenset(".^$*+?{}[]\\|()")


def _stop(_id: int, _from: int, to: int, _flags: int, found: list[int]) -> bool:
    found.append(to)
    return True  # the first match answers: hyperscan stops scanning


@lru_cache(maxsize=64)
def _compiled(forms: tuple[str, ...]) -> Prefilter:
    """One database per set of triggers (every session of a masking rule shares it),
    compiled off the caller's thread: the first session of a rule does not stall the others."""
    return Prefilter(forms, background=True)

