"""Mask a byte stream that arrives in arbitrary chunks: the output of an SSH channel.

``StreamMasker.feed(data)`` returns the bytes that can be released now and keeps back a tail in
which a value may still be growing; ``flush()`` releases the tail. Released text is masked by the
``ValueMasker`` exactly as if the whole stream had been masked at once, as long as the stream is
not flushed in the middle: the tail is cut only where no detector's match can cross the cut.

- Bytes are decoded as UTF-8 with ``surrogateescape`` by an incremental decoder, so a multi-byte
  character is never split and arbitrary bytes come back unchanged where nothing is masked.
- The safe cuts follow from the built-in patterns (``engine.masking.detectors``): no match
  crosses a line break (CR or LF), and one crosses a blank or a comma only after a word that
  ends in a digit, a capital, ``) = : - +``, a quote around a key, or a secret word
  (``password``, ``key``...), or while a quote is open. A line holding a JSON escape is read
  decoded (``engine.masking.escaped``): an escaped quote, ``=`` or letter of a key word defeats
  those rules, so only its line break is a cut (and ``max_hold``). The tail held back is therefore
  usually the last word of the last line. With a custom detector (any pattern) only line
  breaks are cuts.
- A private key block is held from its header until its footer, up to ``max_key_block``
  characters; a longer (or truncated, at ``flush``) block is masked as it stands and the lines
  of key material that follow it are dropped until the footer, so that no part of a key leaks
  (turned into stars instead when the masker keeps lengths: a file transfer).
- A line longer than ``max_hold`` without a safe cut is cut at its last blank, comma or brace
  (a value there may be split; this is the price of a bound on memory and latency).
- Terminal escape sequences pass through unchanged. Colour (SGR) and erase-line sequences, which
  ``grep --color`` puts inside values, and characters that draw nothing (U+200B, a soft
  hyphen, BEL) are looked through; any other sequence separates values in the text, so the
  tail held back never reaches back past one, but a line holding one (or a carriage return,
  a backspace) is read again as the terminal would draw it, with what was released of the
  line before (``engine.masking.rendered``): a value the row shows that is in no run of the
  text (split by a saved cursor or a title, drawn over a placeholder) has the characters
  drawn after the last cursor movement before its end starred. What a release starred may
  then depend on where the stream was cut, when a value was shown between two releases.

An interactive shell prints prompts and echoes keys without a line break, and the last word of a
prompt is held back like any other. ``preview()`` says what a flush would release of it now,
without releasing it: a terminal shows that at once and rewrites it if a value completes later
(``engine.masking.terminal``), while the record waits for the decision. Otherwise the caller
must ``flush()`` once the target has been quiet for a moment, and at the end of the channel. A
value that straddles a flush is not recognised; a key block open at a flush is masked whole.

``counts`` (a ``Counter`` of detector names) accumulates one entry per masked value.
"""

from __future__ import annotations

import codecs
import itertools
import re
from bisect import bisect_left, bisect_right
from collections import Counter, deque

from engine.masking.detectors import KEY_ENDINGS, KEY_HEADER, is_builtin
from engine.masking.escaped import has_escape
from engine.masking.masker import ValueMasker
from engine.masking.rendered import (
    ESCAPE,
    blanked,
    drawn,
    escapes,
    has_invisible,
    looked_through,
    lost_after,
    may_move,
    unterminated,
)
from engine.masking.unidigits import fold

MAX_HOLD = 4096  # characters of an unfinished line held back (bytes, for ASCII)
MAX_KEY_BLOCK = 16384  # characters of a private key block held back until its footer

# ECMA-48: control strings (OSC …) with their end, CSI, two-byte escapes, and the characters
# a terminal draws nothing for (``engine.masking.rendered``).
_ESCAPE = ESCAPE
_ROWS_ABOVE = 24  # lines before the current one a move up may draw next to
_ABOVE_CONTEXT = 512  # characters of each of those lines
# What moves the cursor to another row relative to where it is.
_VERTICAL = re.compile(r"\x1b(?:\[[0-9;]*[ABEFe]|[MDE])|[\x0b\x0c]")
_LINE_CONTEXT = 4096  # characters of a line already released that a move may draw next to
_BREAKS = re.compile(r"[ \t,]+")
_FORCED_BREAKS = " \t,{}<>|"
# A word ending in one of these may be the first part of a value that goes on after a blank:
# card, phone and IBAN groups, "key =", "key: value", a private key header, an element of a
# list whose digits go on in the next (``{{4012,8888},{8888,1881}}``).
_CONTINUES = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ)]}=:-+")
# What the lines of a key block look like: base64, or a PEM header like "Proc-Type: 4,ENCRYPTED".
_KEY_LINE = re.compile(r"[A-Za-z0-9+/=]*|[A-Za-z][A-Za-z0-9-]*: .*")


class StreamMasker:
    """The masking state of one direction of one channel."""

    def __init__(self, masker: ValueMasker, *, max_hold: int = MAX_HOLD,
                 max_key_block: int = MAX_KEY_BLOCK) -> None:
        self.masker = masker
        self.max_hold = max_hold
        self.max_key_block = max_key_block
        self.counts: Counter[str] = Counter()
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._held = ""
        self._released = ""  # the raw text the last feed or flush released
        # Held characters in which no in-line cut exists: those need not be looked at again.
        self._rejected = 0
        # The label of a key block whose start was released masked and whose rest is dropped.
        self._key_label: str | None = None
        # The current line as released so far (its last ``_LINE_CONTEXT`` characters), and
        # whether something in it may move the cursor: what is released next on that line is
        # read as the terminal shows it, drawn over or next to it.
        self._line = ""
        self._line_moves = False
        # The lines before it (their first ``_ABOVE_CONTEXT`` characters), as the screen got
        # them, and whether the current line moves the cursor up or down: a value drawn next
        # to what an earlier line left is read with those lines.
        self._above: deque[str] = deque(maxlen=_ROWS_ABOVE)
        self._line_rows = False
        # Whether an escape the rendered rows do not follow (a move to a place on the screen,
        # scrolling, an alternate screen…) came on an earlier line with no blank screen
        # since: where output is drawn is not known, and its digits are starred.
        self._lost = False
        self._entered: bool | None = None  # ``_lost`` when the alternate screen was entered
        # Word cuts are derived from the built-in patterns; a custom one may match anything.
        self._word_cuts = all(is_builtin(d) for d in masker.detectors)
        self._keys = any(d.name == "private_key" and is_builtin(d) for d in masker.detectors)

    @property
    def held(self) -> int:
        """How many characters are kept back, waiting for more data or a flush."""
        return len(self._held)

    @property
    def tail(self) -> str:
        """The text held back, as it came (decoded, not masked)."""
        return self._held

    @property
    def released(self) -> str:
        """The text the last ``feed`` or ``flush`` released, as it came (before masking)."""
        return self._released

    def render(self, text: str, *, on_line: bool = False) -> str:
        """``text`` masked as a release would mask it, without counting its values: for a
        terminal that must draw a part of what was released differently from the record
        (``on_line``: drawn after what has been released of the current line)."""
        counts, lost, entered = self.counts, self._lost, self._entered
        self.counts = Counter()
        try:
            if on_line:
                return self._mask(text, self._line, self._line_moves, self._line_rows)
            return self._mask(text)
        finally:
            self.counts, self._lost, self._entered = counts, lost, entered

    def preview(self) -> str | None:
        """The tail as ``flush`` would release it now (masked as it stands), without releasing
        it or counting its values; None inside a key block, which is only ever shown whole.
        A character cut in the middle is not in it."""
        held = self._held
        if not held:
            return ""
        if self._key_label is not None or (self._keys and KEY_HEADER.search(held)):
            return None
        if "\x1b" in held:
            return None  # escapes are masked piece by piece; a terminal will not rewrite them
        return self.render(held, on_line=True)

    def feed(self, data: bytes) -> bytes:
        """The masked bytes that can be released after ``data``."""
        text = self._decoder.decode(data)
        if not text:
            self._released = ""
            return b""
        return self._release(self._held + text, final=False)

    def flush(self) -> bytes:
        """Release everything held, masked as it stands (end of stream, or a quiet target)."""
        text = self._held + self._decoder.decode(b"", final=True)
        self._decoder.reset()
        if not text:
            self._released = ""
            return b""
        return self._release(text, final=True)

    def flush_starred(self) -> bytes:
        """Release everything held, masked as it stands but for its last run of printable
        ASCII (what may be the start of a value: values are printable ASCII, and a card's
        spaces are in it), which becomes ``*`` but for white space (lengths kept): for a pause
        in the middle of a file read in pieces, where the rest of that value has not come
        (``SftpMasker``). Counted as ``transfer-paused`` when something is starred."""
        text = self._held + self._decoder.decode(b"", final=True)
        self._decoder.reset()
        cut = len(text.rstrip(_PRINTABLE))
        out = self._release(text[:cut], final=True) if cut else b""
        self._held, self._released, self._rejected = "", "", 0
        self._key_label = None
        tail = text[cut:]
        if tail:
            self.counts["transfer-paused"] += 1
        return out + starred(tail.encode("ascii"))

    # --- where to cut ----------------------------------------------------------------------------

    def _release(self, text: str, *, final: bool) -> bytes:
        out = self._releasing(text, final=final)
        self._released = text[:len(text) - len(self._held)]
        return out

    def _releasing(self, text: str, *, final: bool) -> bytes:
        dropped = ""
        if self._key_label is not None:
            before = text
            text, inside = self._drop_key_lines(text, final)
            if self.masker.keep_length:  # a transfer: the key's lines become stars instead
                dropped = _LINE_CONTENT.sub(_stars, before[:len(before) - len(text)])
            if inside:
                self._held = text
                return dropped.encode("utf-8", "surrogateescape")
        if final:
            cut = len(text)
            opened, _ = self._key_blocks(text)
            if opened is not None:
                self._key_label = opened[1]
            self._rejected = 0
        else:
            cut = self._cut(text)
        released, self._held = text[:cut], text[cut:]
        masked = self._mask(released, self._line, self._line_moves, self._line_rows)
        self._on_line(masked)
        return (dropped + masked).encode("utf-8", "surrogateescape")

    def _on_line(self, released: str) -> None:
        """Follow the current line through what was released (as the screen got it)."""
        newline = released.rfind("\n")
        before = self._line
        if newline >= 0:
            lines = (self._line + released[:newline]).split("\n")
            self._above.extend(line[:_ABOVE_CONTEXT] for line in lines[-_ROWS_ABOVE:])
            self._line, self._line_moves, self._line_rows = released[newline + 1:], False, False
            rest = self._line
        else:
            self._line += released
            rest = released
        if not self._line_moves and rest and (
                may_move(rest) or (newline < 0 and before.endswith("\r") and rest[0] != "\n")):
            self._line_moves = True
        if not self._line_rows and rest and _VERTICAL.search(rest):
            self._line_rows = True
        if len(self._line) > _LINE_CONTEXT:
            self._line = self._line[-_LINE_CONTEXT:]

    def _cut(self, text: str) -> int:
        n = len(text)
        limit = n
        opened, closed = self._key_blocks(text)
        if opened is not None:
            begin, label = opened
            if n - begin > self.max_key_block:
                self._key_label = label  # masked to the end now; the rest is dropped
                self._rejected = 0
                return n
            limit = begin
        start = max(text.rfind("\n", 0, limit), text.rfind("\r", 0, limit)) + 1
        if text.find("\x1b", start, limit) >= 0:
            # An escape that moves the cursor separates values in the text (``_mask`` masks
            # the text on either side of it apart, and reads the line as the screen shows it
            # with what was released of it before): a cut right after it is safe too. A
            # control string not yet ended is held whole (its text is not drawn).
            # (A bare "ESC [" is a CSI that has not ended yet.)
            for esc in escapes(text).finditer(text, start, limit):
                seq = esc.group()
                if unterminated(seq):
                    limit = esc.start()
                    break
                if seq != "\x1b[" and not looked_through(seq) and not _REPEAT.fullmatch(seq):
                    start = esc.end()  # (a repeat draws: what follows may go on its value)
            start = min(start, limit)
        floor = self._rejected if start == 0 else start
        cut = start
        if closed is not None and closed[1] > start:
            # The last line ends a key block: cut after its footer, or before its header.
            cut = closed[0]
            floor = max(floor, closed[1])
        if self._word_cuts:
            found = self._word_cut(text, start, limit, floor)
            if found is not None:
                cut = found
        if limit < n:  # an open key block is held whole
            self._rejected = 0
        elif n - max(cut, start) > self.max_hold:
            # An unfinished line too long to hold: cut it anyway (after a key block it ends).
            cut = max(self._forced_cut(text, n), closed[1] if closed is not None else 0)
            self._rejected = 0
        else:
            self._rejected = n - cut if cut >= start else 0
        return cut

    def _word_cut(self, text: str, start: int, limit: int, floor: int) -> int | None:
        """The last cut after a blank or comma in ``text[start:limit]`` that no match crosses.

        Looks from the right, so that the usual answer (before the last word) is found at once;
        cuts at or before ``floor`` are known to be unsafe.
        """
        line = text[start:limit]
        if "\\" in line and has_escape(line):
            return None  # read decoded: an escaped quote, = or key letter defeats the rules
        backwards = line[::-1]
        open_double = line.count('"')
        open_single = line.count("'")
        right = limit
        for run in _BREAKS.finditer(backwards):
            cut = limit - run.start()
            if cut <= floor:
                break
            between = text[cut:right]
            open_double -= between.count('"')
            open_single -= between.count("'")
            right = cut
            if open_double % 2 or open_single % 2:
                continue  # inside a quoted value
            before = _BREAKS.search(backwards, run.end())
            word_start = limit - before.start() if before is not None else start
            if ends_values(text[word_start:limit - run.end()]):
                return cut
        return None

    def _forced_cut(self, text: str, n: int) -> int:
        low = n - self.max_hold
        at = max(text.rfind(ch, low, n) for ch in _FORCED_BREAKS)
        return at + 1 if at >= 0 else low

    def _key_blocks(self, text: str) -> tuple[tuple[int, str] | None, tuple[int, int] | None]:
        """The first key block without its footer (start, label), and the last closed one before
        it (start, end), in the order the private_key pattern finds them."""
        opened: tuple[int, str] | None = None
        closed: tuple[int, int] | None = None
        if not self._keys:
            return opened, closed
        pos = 0
        while (header := KEY_HEADER.search(text, pos)) is not None:
            footer = f"-----END {header.group(1)}-----"
            end = text.find(footer, header.end())
            if end < 0:
                opened = header.start(), header.group(1)
                break
            pos = end + len(footer)
            closed = header.start(), pos
        return opened, closed

    def _drop_key_lines(self, text: str, final: bool) -> tuple[str, bool]:
        """Drop the key material after a block released early: (what is left, still inside)."""
        assert self._key_label is not None
        footer = f"-----END {self._key_label}-----"
        pos = 0
        while pos < len(text):
            newline = text.find("\n", pos)
            if newline < 0 and not final and len(text) - pos <= self.max_hold:
                return text[pos:], True  # an unfinished line: wait for the rest
            end = len(text) if newline < 0 else newline + 1
            line = text[pos:end]
            at = line.find(footer)
            if at >= 0:
                self._key_label = None
                return text[pos + at + len(footer):], False
            if _KEY_LINE.fullmatch(line.rstrip("\r\n")) is None:
                self._key_label = None  # not key material: the block has ended after all
                return text[pos:], False
            pos = end
        if final:
            self._key_label = None
        return "", self._key_label is not None

    # --- masking what is released ----------------------------------------------------------------

    def _mask(self, text: str, line: str = "", moves: bool = False,
              vertical: bool = False) -> str:
        """``text`` masked, drawn after ``line`` (what the screen got of the current line so
        far), in which something may move the cursor (``moves``), up or down (``vertical``:
        the lines above are read with it)."""
        if not text:
            return text
        masked = self._mask_text(text)
        if line.endswith("\r") and masked[:1] != "\n":
            moves = True  # a carriage return the line feed did not follow
        if not moves and not self._lost and not may_move(masked):
            return masked
        # A line in which the cursor moves (or an escape seems to split text) is read again as
        # the screen would show it, masked: a value there that this text draws a part of (a
        # card drawn over a placeholder, split by a saved cursor, a title) stars this text's
        # part of the line whole (its escapes kept, so that it draws over the same cells).
        out: list[str] = []
        above = list(self._above)  # the lines before each piece
        start = 0
        while start < len(masked):
            newline = masked.find("\n", start)
            end = len(masked) if newline < 0 else newline + 1
            piece = masked[start:end]
            before, moved, rows_moved = (line, moves, vertical) if start == 0 else (
                "", False, False)
            lost = self._lost
            if lost or moved or may_move(piece):
                if rows_moved or _VERTICAL.search(piece):
                    before = "\n".join([*above[-_ROWS_ABOVE:], before])
                piece = self._drawn_values(before, piece, lost)
            self._lost, self._entered = lost_after(piece, lost, self._entered)
            above.append((line + piece if start == 0 else piece).rstrip("\n")[:_ABOVE_CONTEXT])
            start = end
            out.append(piece)
        return "".join(out)

    def _drawn_values(self, before: str, piece: str, lost_before: bool = False) -> str:
        """``piece`` (drawn after ``before`` on the same line) with the characters starred
        that draw a value the row shows out of the text's order: every character of the
        piece that drew one of its cells, and a repeat (``ESC[7b``) that drew some becomes
        the stars it would have drawn. After an escape the rows do not follow exactly (a
        move to a place on the screen, scrolling, insert mode…: ``rendered.drawn``), where
        the piece draws is not known: every digit it draws from there is starred (fail
        closed: a value may be completed there with what the screen already shows), and so
        is every digit of a piece drawn while that holds from an earlier line
        (``lost_before``)."""
        text = before + piece.rstrip("\r\n")
        shown_rows, lost = drawn(text)
        starred: set[int] = set()
        repeats = False
        for shown, cells in shown_rows:
            for f in self.masker.find(shown):
                span = cells[f.start:f.end]
                last = max(span)
                if last < len(before) or _in_order(text, span):
                    continue
                hidden = {i - len(before) for i in span if i >= len(before)}
                repeats = repeats or len(set(span)) < len(span)
                if hidden - starred or repeats:
                    starred |= hidden
                    self.counts[f.detector] += 1
        if repeats:
            piece = _REPEAT.sub(lambda m: self._stars_for(m.group()), piece)
        if starred:
            if self.masker.keep_length:  # a file transfer: a star for each byte
                piece = "".join(_stars_of(ch) if i in starred and not ch.isspace() else ch
                                for i, ch in enumerate(piece))
            else:
                piece = "".join("*" if i in starred and not ch.isspace() else ch
                                for i, ch in enumerate(piece))
        if lost_before and blanked(piece):
            lost_before = False  # a blank screen in it: ``drawn`` knows from where
        if lost >= 0 or lost_before:
            at = max(lost - len(before), 0) if lost >= 0 and not lost_before else 0
            rest = self._digits_starred(piece[at:])
            if rest != piece[at:]:
                self.counts["rendered-unknown"] += 1
                piece = piece[:at] + rest
        return piece

    def _stars_for(self, repeat: str) -> str:
        """What replaces a repeat that drew part of a value: the stars it would draw (its
        length in stars in a file transfer)."""
        if self.masker.keep_length:
            return "*" * len(repeat)
        count = repeat[2:-1].split(";", 1)[0]
        return "*" * min(max(int(count) if count.isdigit() and len(count) < 6 else 1, 1),
                         _MAX_REPEAT)

    def _digits_starred(self, text: str) -> str:
        """``text`` with every digit it draws (of any script) starred, its escapes kept."""
        def stars(part: str) -> str:
            if part.isascii():
                return _ASCII_DIGITS.sub("*", part)
            return "".join((_stars_of(ch) if self.masker.keep_length else "*")
                           if ch.isdigit() else ch for ch in part)

        out: list[str] = []
        pos = 0
        for m in escapes(text).finditer(text):
            out.append(stars(text[pos:m.start()]))
            out.append(m.group())
            pos = m.end()
        out.append(stars(text[pos:]))
        return "".join(out)

    def _mask_text(self, text: str) -> str:
        if not text:
            return text
        if "\x1b" not in text and not has_invisible(text):
            masked, names = self.masker.mask(text)
            self.counts.update(names)
            return masked
        # Split at the escapes that separate values; look through the others.
        out: list[str] = []
        piece = 0  # where the current piece begins in text
        plain: list[str] = []  # the piece's text without its see-through escapes
        places: list[int] = []  # where each see-through escape sits in that plain text
        sizes: list[int] = []
        length = 0
        pos = 0
        for esc in escapes(text).finditer(text):
            plain.append(text[pos:esc.start()])
            length += esc.start() - pos
            pos = esc.end()
            if looked_through(esc.group()):
                places.append(length)
                sizes.append(len(esc.group()))
                continue
            out.append(self._mask_piece(text[piece:esc.start()], "".join(plain), places, sizes))
            out.append(self._control_string(esc.group()))
            piece, plain, places, sizes, length = esc.end(), [], [], [], 0
        plain.append(text[pos:])
        out.append(self._mask_piece(text[piece:], "".join(plain), places, sizes))
        return "".join(out)

    def _control_string(self, seq: str) -> str:
        """An escape sequence as it goes out: a control string's text (a window title the
        terminal shows, a DCS payload) masked as any text is."""
        if len(seq) < 4 or seq[1] not in "]P_^X":
            return seq
        end = len(seq) - (1 if seq.endswith("\x07") else 2)
        body = seq[2:end]
        masked, names = self.masker.mask(body)
        if not names:
            return seq
        self.counts.update(names)
        return seq[:2] + masked.replace("\x07", "").replace("\x1b", "") + seq[end:]

    def _mask_piece(self, raw: str, plain: str, places: list[int], sizes: list[int]) -> str:
        if not places:
            masked, names = self.masker.mask(raw)
            self.counts.update(names)
            return masked
        findings = self.masker.find(plain)
        if not findings:
            return raw
        shift = [0]
        for size in sizes:
            shift.append(shift[-1] + size)
        out: list[str] = []
        pos = 0
        for f in findings:
            # Escapes just before a value stay before its mask (a colour then applies to it),
            # those inside it follow the mask, those just after it stay after it.
            begin = f.start + shift[bisect_right(places, f.start)]
            end = f.end + shift[bisect_left(places, f.end)]
            out.append(raw[pos:begin])
            out.append(self.masker.replacement(f.detector, plain[f.start:f.end]))
            out.extend(esc.group() for esc in _ESCAPE.finditer(raw, begin, end))
            pos = end
            self.counts[f.detector] += 1
        out.append(raw[pos:])
        return "".join(out)


_LINE_CONTENT = re.compile(r"[^\r\n]+")


def starred(data: bytes) -> bytes:
    """``data`` with every byte but ASCII white space as ``*``."""
    return _NOT_SPACE.sub(b"*", data)


_NOT_SPACE = re.compile(rb"[^ \t\r\n\f\v]")
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))  # what a value is written with


def _stars(m: re.Match[str]) -> str:
    return "*" * len(m.group().encode("utf-8", "surrogateescape"))


def _stars_of(ch: str) -> str:
    return "*" * len(ch.encode("utf-8", "surrogateescape"))


_REPEAT = re.compile(r"\x1b\[[0-9;]*b")
_MAX_REPEAT = 4096
_ASCII_DIGITS = re.compile(r"[0-9]")


def _in_order(drawn: str, cells: list[int]) -> bool:
    """Whether the characters that drew ``cells`` come in the text in that order, with nothing
    between them that the masker does not look through: the text as it stands was read with
    that value (a mask, say ``password=****``, is found again as it is shown)."""
    for a, b in itertools.pairwise(cells):
        if a < 0 or b <= a or may_move(drawn[a + 1:b]) or _drawn(drawn[a + 1:b]):
            return False
    return bool(cells) and cells[0] >= 0


def _drawn(between: str) -> bool:
    """Whether text between two characters draws a cell (elsewhere: it was moved over)."""
    return bool(escapes(between).sub("", between))


def ends_values(word: str) -> bool:
    """Whether a word before a blank or comma ends every value: nothing after it can join it."""
    if "\x1b" in word:
        word = _ESCAPE.sub("", word)
        if "\x1b" in word:
            return False  # an escape sequence still arriving
    if word[-1:] in ("'", '"'):
        word = word[:-1]  # "password": the key's closing quote
    if not word:
        return True
    word = fold(word)  # a fullwidth digit goes on as an ASCII one does
    return word[-1] not in _CONTINUES and not word.lower().endswith(KEY_ENDINGS)
