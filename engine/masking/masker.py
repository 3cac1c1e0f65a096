"""Mask the sensitive values inside one text value.

``ValueMasker`` runs a set of detectors over a text and replaces each finding with its
detector's strategy. Most values contain nothing, so the first step is one pre-screen built from
the detectors' triggers: substring tests for the plain ones (``@``, ``-----BEGIN``, ``eyJ``,
``AKIA``, ``ASIA``) and one compiled regex for the others (number shapes such as four digits,
a separator and four more; ``=`` or ``:`` after a word). A value it rejects costs those few
tests; in a value it lets through, only the detectors whose own trigger occurs are run.

Detected values inside base64, hex and URL encodings are found too (``encoded``): a candidate
run is decoded and its decoded text masked like any other; the pre-screens let a text with a
candidate through. So are values behind JSON string escapes (``escaped``: ``\\u0034``, ``\\/``,
a ``\\n`` right before a value): the text is decoded and each finding of the decoded text masks
the characters it was read from; the pre-screens let a text with such an escape through.

Where hyperscan is installed the same triggers are compiled into one database
(``engine.masking.prefilter``) and ``screen`` scans longer data in C; ``ResultMasker`` uses it
to skip rows. It answers as the Python screen does: never "nothing" where a detector finds.

Findings that overlap are resolved once: the earliest start wins, then the longest, then the
detector listed first; a finding that starts inside a kept one but runs past its end extends it,
so that no value is left half-masked and nothing is masked twice.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping

from engine.masking import prefilter
from engine.masking.detectors import BUILTIN, NATIVE_TRIGGERS, CardDetector, Detector, Finding
from engine.masking.encoded import RUN_TRIGGER, URL_TRIGGER, EncodedValues
from engine.masking.escaped import TRIGGER as ESCAPE_TRIGGER
from engine.masking.escaped import EscapedValues, escape, has_escape, unescape, widened
from engine.masking.prefilter import Prefilter
from engine.masking.strategies import REDACT, SEPARATORS, Strategy
from engine.masking.unidigits import BYTES_TRIGGER as FOLDED_BYTES
from engine.masking.unidigits import NATIVE_TRIGGER as FOLDED_NATIVE
from engine.masking.unidigits import fold
from engine.masking.zerowidth import BYTES_TRIGGER as UNSEEN_BYTES
from engine.masking.zerowidth import NATIVE_TRIGGER as UNSEEN_NATIVE
from engine.masking.zerowidth import present as unseen_present
from engine.masking.zerowidth import stripped as unseen_stripped


class ValueMasker:
    """Detectors, a strategy for each (``default`` for those not named) and the hashing key.

    ``detectors`` defaults to every built-in one, in ``BUILTIN`` order; that order breaks ties
    between findings of the same span. Raises ``ValueError`` with one sentence for a strategy
    that names no detector, two detectors of one name, or a hash strategy without a key.
    """

    def __init__(self, detectors: Iterable[Detector] | None = None,
                 strategies: Mapping[str, Strategy] | None = None, *,
                 default: Strategy = REDACT, key: bytes = b"", encodings: bool = True,
                 keep_length: bool = False, native: bool = True) -> None:
        self.detectors = tuple(BUILTIN.values() if detectors is None else detectors)
        names = [d.name for d in self.detectors]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"masking detector {repeated[0]!r} is defined twice; rename one.")
        chosen = dict(strategies or {})
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise ValueError(f"masking strategy for {unknown[0]!r}, which is not a detector in "
                             f"use ({', '.join(names)}).")
        self.strategies = {n: chosen.get(n, default) for n in names}
        if not key and any(s.kind == "hash" for s in self.strategies.values()):
            raise ValueError("a hash masking strategy needs a secret key; configure one.")
        self.key = key
        self._options = (encodings, native)
        self._values: ValueMasker | None = None
        # A file transfer's data must keep its length (and so its protocol's framing): every
        # replacement then keeps the value's length in UTF-8 bytes.
        self.keep_length = keep_length
        self._cache: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._encoded = EncodedValues(self.find) if encodings else None
        self._escaped = EscapedValues(self.find) if encodings else None

        # The pre-screen: plain-string triggers are substring tests (memchr-fast); the others
        # (built-in: DIGITS, ASSIGNMENT) are joined into one regex, led by a character class.
        triggers = list(dict.fromkeys(d.trigger for d in self.detectors if d.trigger))
        literals: list[str] = []
        regexes: list[str] = []
        gates: dict[str, Callable[[str], object]] = {}
        for t in triggers:
            words = _plain_strings(t)
            if words is None:
                regexes.append(t)
                gates[t] = re.compile(t, _TRIGGER_FLAGS).search
            else:
                literals.extend(w for w in words if w not in literals)
                gates[t] = _contains_any(words)
        self._literals = tuple(literals)
        self._literals_bytes = tuple(w.encode("ascii") for w in literals)
        combined = _combined(regexes)
        self._screen = re.compile(combined, _TRIGGER_FLAGS) if regexes else None
        # Raw protocol bytes put a value's 4-byte length right before it, and a length byte can
        # be an ASCII digit: a trigger that looks behind for "no digit before" would then miss
        # the value (a leak), so the byte screens drop that look-behind (more false positives,
        # never a false negative).
        self._screen_bytes = (re.compile(_loose(combined).encode("ascii"), re.VERBOSE)
                              if regexes else None)
        # For a short value (most column values), one regex call answers what the substring
        # tests and the trigger regex answer together: a match of ``@|eyJ|...|<triggers>``
        # wherever one of them matches. Per call it costs one search instead of six; on a long
        # buffer the substring tests stay, as they skip in memchr rather than at each ``e``.
        short = [f"[\\x{ord(w[0]):02x}]{re.escape(w[1:])}" for w in literals] + regexes
        # Unicode digits and separators (``unidigits``): ``find`` reads them folded to ASCII,
        # so the byte screens let a value holding one through (in its UTF-8 form).
        self._folded_bytes = re.compile(FOLDED_BYTES.encode("ascii"))
        short.append(FOLDED_BYTES)
        # Characters that draw nothing (``zerowidth``): ``find`` reads the text without them too.
        self._unseen_bytes = re.compile(UNSEEN_BYTES.encode("ascii"))
        short.append(UNSEEN_BYTES)
        if encodings:  # a candidate run, a %XX or JSON escape lets a value through to ``find``
            short += list(_ENCODED)
            self._encoded_bytes: re.Pattern[bytes] | None = re.compile(
                "|".join(_ENCODED).encode("ascii"))
            self._encoded_text: re.Pattern[str] | None = re.compile("|".join(_ENCODED))
        else:
            self._encoded_bytes = self._encoded_text = None
        self._screen_short = (re.compile(_loose(_combined(short)).encode("ascii"), re.VERBOSE)
                              if short else None)
        # Custom detectors have no trigger: the pattern is its own pre-screen.
        self._untriggered = tuple(d for d in self.detectors if d.trigger is None)
        # The same triggers compiled by hyperscan (``prefilter``), when it is installed and
        # every trigger has a native form: ``screen`` then scans in C. ``native=False`` keeps
        # the Python screen (which answers the same), as does a custom detector.
        self.prefilter: Prefilter | None = None
        if native and not self._untriggered:
            self.prefilter = prefilter.build(
                triggers, NATIVE_TRIGGERS,
                encoded=(*(_ENCODED if encodings else ()), FOLDED_NATIVE, UNSEEN_NATIVE))
        # For ``ResultMasker``: one search per DataRow instead of a screen per value. Sound only
        # for a pattern whose match in a value alone is also a match inside the row around it
        # (engine.masking.pg.TextMasker), so anything context-dependent turns it off.
        self.screen_pattern: re.Pattern[bytes] | None = None
        if (self._screen_short is not None and not self._untriggered
                and not _CONTEXT.search(self._screen_short.pattern.decode("ascii"))):
            self.screen_pattern = self._screen_short
        # Detectors grouped by trigger (four share DIGITS), so that find tests each one once.
        members: dict[str | None, list[tuple[int, Detector]]] = {}
        for order, d in enumerate(self.detectors):
            members.setdefault(d.trigger, []).append((order, d))
        self._groups = tuple((gates[t] if t is not None else None, tuple(m))
                             for t, m in members.items())

    def strategy_for(self, detector: str) -> Strategy:
        return self.strategies[detector]

    def for_values(self) -> ValueMasker:
        """This masker for database values, each read whole: a run of digits is a card only
        whole, since digits beside a card in one value are the value's own (an id of 17 or
        19 digits would be masked nine times in ten), where in a stream they may be another
        file's (``cardruns``). Made once."""
        if self._values is None:
            encodings, native = self._options
            detectors = tuple(dataclasses.replace(d, glued=False)
                              if isinstance(d, CardDetector) else d for d in self.detectors)
            self._values = ValueMasker(detectors, self.strategies, key=self.key,
                                       encodings=encodings, keep_length=self.keep_length,
                                       native=native)
        return self._values

    def screen(self, data: bytes) -> bool:
        """Whether ``data`` (a whole message, say) could contain anything to mask.

        ``False`` is a promise: no value inside it has a finding, so it passes untouched.
        """
        native = self.prefilter
        if native is not None and len(data) > _NATIVE_FROM and native.compiled:
            return native.first(data) >= 0
        if len(data) <= _SHORT and self._screen_short is not None:
            if self._screen_short.search(data) is not None:
                return True
            if not self._untriggered:
                return False
            return any(d.pattern.search(data.decode("utf-8", "surrogateescape")) is not None
                       for d in self._untriggered)
        for word in self._literals_bytes:
            if word in data:
                return True
        if self._screen_bytes is not None and self._screen_bytes.search(data) is not None:
            return True
        if self._encoded_bytes is not None and self._encoded_bytes.search(data) is not None:
            return True
        if not data.isascii() and (self._folded_bytes.search(data) is not None
                                   or self._unseen_bytes.search(data) is not None):
            return True
        if not self._untriggered:
            return False
        text = data.decode("utf-8", "surrogateescape")
        return any(d.pattern.search(text) is not None for d in self._untriggered)

    def screen_text(self, text: str) -> bool:
        """``screen`` for text already decoded."""
        for word in self._literals:
            if word in text:
                return True
        if self._screen is not None and self._screen.search(text) is not None:
            return True
        if self._encoded_text is not None and self._encoded_text.search(text) is not None:
            return True
        return any(d.pattern.search(text) is not None for d in self._untriggered)

    def find(self, text: str) -> list[Finding]:
        """The spans to mask in ``text``, in order, not overlapping. Unicode digits,
        separators, letters and symbols are read as the ASCII they show (``unidigits.fold``:
        one character for one, so the spans are those of ``text``), and the text as it stands
        too (a fold only adds findings: ``password=ab<U+FF1B>cd`` folded ends its value at
        the ``;``); and the text is read without the characters that draw nothing too
        (``zerowidth``: a finding there masks the characters it was read from)."""
        folded = fold(text)
        found = self._found(folded)
        if folded is not text:
            found += self._found(text)
            text = folded
        if unseen_present(text):
            plain, places = unseen_stripped(text)
            found += [(places[f.start], -(places[f.end - 1] + 1), order,
                       Finding(places[f.start], places[f.end - 1] + 1, f.detector))
                      for _, _, order, f in self._found(plain)]
        return _resolved(found)

    def _found(self, text: str) -> list[tuple[int, int, int, Finding]]:
        """Every finding in ``text`` (folded), with what orders them, overlapping."""
        if not self.screen_text(text):
            return []
        found: list[tuple[int, int, int, Finding]] = []
        for gate, group in self._groups:
            if gate is not None and not gate(text):
                continue
            for order, detector in group:
                for f in detector.find(text):
                    found.append((f.start, -f.end, order, f))
        if self._encoded is not None and self._encoded_text is not None \
                and self._encoded_text.search(text) is not None:
            after = len(self.detectors)  # a plain finding of the same span wins
            found.extend((f.start, -f.end, after, f) for f in self._encoded.find(text))
            if self._escaped is not None and has_escape(text):
                found.extend((f.start, -f.end, after, f) for f in self._escaped.find(text))
        if found and "\\" in text:  # no finding starts or ends inside a JSON escape
            found = [_widened(text, entry) for entry in found]
        return found

    def replacement(self, detector: str, value: str) -> str:
        """What ``value``, found by ``detector``, becomes inside a text (NULL is not possible).

        A value written with JSON escapes is masked as the value they spell (a hash of
        ``\\u0034…`` is the hash of ``4…``), and written back escaped where needed, so that a
        JSON string around it stays one (a partial mask kept ``\\u`` of an escape it cut)."""
        if not self.keep_length and has_escape(value):
            decoded = unescape(value)
            if decoded != value:
                return escape(self._replacement(detector, decoded))
        return self._replacement(detector, value)

    def _replacement(self, detector: str, value: str) -> str:
        strategy = self.strategies[detector]
        masked = strategy.apply(value, self.key)
        if masked is None:
            masked = strategy.mask
        if self.keep_length and len(masked.encode("utf-8", "surrogateescape")) != len(
                value.encode("utf-8", "surrogateescape")):
            masked = _HIDDEN_BYTES.sub(_stars, value)
        return masked

    def mask(self, text: str) -> tuple[str, list[str]]:
        """``text`` with every finding masked, and the detector of each masked value in order.
        Short values are remembered (a bounded cache): results repeat the same cards, phone
        numbers and addresses row after row, and masking is deterministic."""
        cached = self._cache.get(text)  # a long text is never there, and costs one hash
        if cached is not None:
            return cached[0], list(cached[1])
        if len(text) <= _CACHED_LENGTH:
            result = self._mask(text)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = (result[0], tuple(result[1]))
            return result
        return self._mask(text)

    def _mask(self, text: str) -> tuple[str, list[str]]:
        findings = self.find(text)
        if not findings:
            return text, []
        parts: list[str] = []
        pos = 0
        for f in findings:
            parts.append(text[pos:f.start])
            parts.append(self.replacement(f.detector, text[f.start:f.end]))
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts), [f.detector for f in findings]


# What a length-keeping replacement stars: every character but a separator (in UTF-8 bytes).
_HIDDEN_BYTES = re.compile("[^" + "".join(re.escape(ch) for ch in sorted(SEPARATORS)) + "]")


def _stars(m: re.Match[str]) -> str:
    return "*" * len(m.group().encode("utf-8", "surrogateescape"))


def _resolved(found: list[tuple[int, int, int, Finding]]) -> list[Finding]:
    """Findings in order, not overlapping: the earliest start wins, then the longest, then the
    detector listed first; one that starts inside a kept one and runs past it extends it."""
    if len(found) < 2:
        return [f for *_, f in found]
    found.sort()
    kept: list[Finding] = []
    for *_, f in found:
        if kept and f.start < kept[-1].end:
            last = kept[-1]
            if f.end > last.end:
                kept[-1] = Finding(last.start, f.end, last.detector)
            continue
        kept.append(f)
    return kept


def _widened(text: str, entry: tuple[int, int, int, Finding]) -> tuple[int, int, int, Finding]:
    f = entry[3]
    start, end = widened(text, f.start, f.end)
    if (start, end) == (f.start, f.end):
        return entry
    return start, -end, entry[2], Finding(start, end, f.detector)


def _loose(pattern: str) -> str:
    """A trigger pattern without its negative look-behinds (for raw protocol bytes)."""
    return re.sub(r"\(\?<!(?:[^()\\]|\\.)*\)", "", pattern)


# Negative look-arounds, anchors and word boundaries: what makes a match depend on what lies
# outside it (the escapes are matched with their backslash, so "\\$" is a literal dollar).
_CONTEXT = re.compile(r"\(\?<?!|(?<!\\)[$^]|\\[bBAZz]")

# What lets a text through to ``find`` for its encoded candidates: a base64 or hex run, a %XX
# escape, a JSON string escape. Each is native too (no look-arounds).
_ENCODED = (RUN_TRIGGER, URL_TRIGGER, ESCAPE_TRIGGER)

_CACHE_SIZE = 8192
_SHORT = 256  # longest ``screen`` data searched with the one regex
_NATIVE_FROM = 64  # shorter data is screened as fast by the one regex as by a hyperscan call
_CACHED_LENGTH = 256
_TRIGGER_FLAGS = re.ASCII | re.VERBOSE
_META = frozenset(".^$*+?{}[]\\|()")


def _plain_strings(trigger: str) -> tuple[str, ...] | None:
    """``"AKIA|ASIA"`` → ``("AKIA", "ASIA")``; ``None`` when the trigger is a real regex."""
    words = tuple(trigger.split("|"))
    if all(w and _META.isdisjoint(w) for w in words):
        return words
    return None


def _contains_any(words: tuple[str, ...]) -> Callable[[str], bool]:
    if len(words) == 1:
        word = words[0]
        return lambda text: word in text
    return lambda text: any(w in text for w in words)


def _combined(regexes: list[str]) -> str:
    """One regex matching wherever one of ``regexes`` does.

    A plain alternation would make the engine attempt every branch at every position, in its
    matcher loop. When every trigger starts with a character class, the result starts with the
    union of those classes instead (the engine skips to candidates in C), and each branch checks
    its own class by looking behind: ``[\\d+=:](?:(?<=[\\d+])...|(?<=[=:])...)``.
    """
    heads = [_leading_class(r) for r in regexes]
    classes = [h for h in heads if h is not None]
    if len(regexes) < 2 or len(classes) < len(regexes):
        return "|".join(f"(?:{r})" for r in regexes)
    union = "".join(cls for cls, _ in classes)
    return f"[{union}](?:" + "|".join(f"(?<=[{cls}])(?:{rest})" for cls, rest in classes) + ")"


def _leading_class(regex: str) -> tuple[str, str] | None:
    """``"[=:](?<=x)"`` → ``("=:", "(?<=x)")``; ``None`` unless a simple class leads."""
    end = regex.find("]", 1)
    if not regex.startswith("[") or regex.startswith("[^") or end < 0:
        return None
    body = regex[1:end]
    if "[" in body or body.endswith("\\") or body.startswith("-") or body.endswith("-"):
        return None  # a dash at an edge would make a range once joined with another class
    return body, regex[end + 1:]
