"""The lines of a text or CSV COPY TO STDOUT, read and written as the statement's options say.

A CopyData of COPY TO STDOUT is one row, its fields spelled by the COPY's own options:
``DELIMITER``, ``NULL``, and for CSV ``QUOTE`` and ``ESCAPE``. Reading a line with other
options than PostgreSQL wrote it with splits a value at the wrong place (``DELIMITER 'r'`` with
``QUOTE '|'`` read as a default CSV), so a masked column's value lands in another field and is
kept. Each line is therefore split as PostgreSQL's own COPY FROM would split it, and a line that
does not split into the statement's number of columns is not trusted (the caller masks it whole).
Options that cannot be honoured make the COPY refused, as a binary COPY is (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.masking.encodings import CODECS, canonical

# Client encodings whose second bytes may be ASCII (a backslash, a delimiter): a line in one of
# them cannot be split byte-wise.
_UNSPLITTABLE = frozenset({"SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB"})
# COPY TO options that change nothing of how a line is spelled.
_NEUTRAL = frozenset({"force_quote"})
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_TEXT_SPELLED = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\v": "\\v"}


@dataclass(frozen=True, slots=True)
class CopyFormat:
    """How a COPY's lines are spelled."""

    csv: bool = False
    delimiter: str = "\t"
    null: str = "\\N"
    quote: str = '"'
    escape: str = '"'
    header: bool = False


TEXT = CopyFormat()


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a line: as spelled (``raw``) and its value (None: the COPY's NULL)."""

    raw: str
    value: str | None


def copy_format(node: dict[str, Any] | None) -> CopyFormat | None:
    """The format of the CopyStmt ``node``'s lines, or None when the gateway cannot read them
    (binary, an option it does not know, an encoding whose bytes it cannot split)."""
    if node is None:
        return TEXT
    options: dict[str, str] = {}
    for item in node.get("options") or []:
        d = item.get("DefElem", {}) if isinstance(item, dict) else {}
        name = str(d.get("defname", "")).lower()
        options[name] = _value(d.get("arg"))
    fmt = options.pop("format", "text").lower()
    if fmt not in ("text", "csv"):
        return None
    csv = fmt == "csv"
    if not csv and ("quote" in options or "escape" in options):
        return None  # PostgreSQL refuses them too: never guess
    delimiter = options.pop("delimiter", "," if csv else "\t")
    null = options.pop("null", "" if csv else "\\N")
    quote = options.pop("quote", '"')
    escape = options.pop("escape", quote)
    header = options.pop("header", "false").lower() not in ("false", "off", "0")
    encoding = options.pop("encoding", None)
    if encoding is not None and (canonical(encoding) not in CODECS
                                 or canonical(encoding) in _UNSPLITTABLE):
        return None
    if set(options) - _NEUTRAL:
        return None
    if any(len(c) != 1 for c in (delimiter, quote, escape)) or delimiter in (quote, "\n", "\r"):
        return None
    if delimiter in null or (csv and quote in null) or "\n" in null or "\r" in null:
        return None
    return CopyFormat(csv, delimiter, null, quote, escape, header)


def _value(arg: Any) -> str:
    """A DefElem's argument as text (no argument: ``true``; a list: its names)."""
    if not isinstance(arg, dict):
        return "true"
    for kind, key in (("String", "sval"), ("Boolean", "boolval"), ("Integer", "ival")):
        if kind in arg:
            value = arg[kind].get(key, 0 if kind == "Integer" else False)
            return str(value).lower() if kind != "String" else str(value)
    return "list"


def split(line: str, fmt: CopyFormat) -> list[Field] | None:
    """The fields of ``line`` (without its newline) as PostgreSQL reads them, or None when it
    is not well formed (an unterminated quote, a trailing backslash)."""
    return _split_csv(line, fmt) if fmt.csv else _split_text(line, fmt)


def spell(value: str, fmt: CopyFormat) -> str:
    """``value`` spelled as a field, so that it reads back as itself (never as NULL)."""
    if not fmt.csv:
        out = []
        for c in value:
            if c == fmt.delimiter:
                out.append("\\" + c)
            else:
                out.append(_TEXT_SPELLED.get(c, c))
        return "".join(out)
    special = (fmt.delimiter, fmt.quote, fmt.escape, "\n", "\r")
    if value != fmt.null and value != "\\." and not any(c in value for c in special):
        return value
    body = "".join(fmt.escape + c if c in (fmt.quote, fmt.escape) else c for c in value)
    return fmt.quote + body + fmt.quote


def _split_csv(line: str, fmt: CopyFormat) -> list[Field] | None:
    delimiter, quote, escape = fmt.delimiter, fmt.quote, fmt.escape
    fields: list[Field] = []
    i, n = 0, len(line)
    while True:
        start = i
        quoted = False
        value: list[str] = []
        while i < n and line[i] != delimiter:
            c = line[i]
            i += 1
            if c != quote:
                value.append(c)
                continue
            quoted = True
            while True:  # inside quotes: up to the closing quote
                if i >= n:
                    return None
                c = line[i]
                i += 1
                if c == escape and i < n and line[i] in (escape, quote):
                    value.append(line[i])
                    i += 1
                elif c == quote:
                    break
                else:
                    value.append(c)
        raw = line[start:i]
        fields.append(Field(raw, None if not quoted and raw == fmt.null else "".join(value)))
        if i >= n:
            return fields
        i += 1


def _split_text(line: str, fmt: CopyFormat) -> list[Field] | None:
    fields: list[Field] = []
    start = i = 0
    n = len(line)
    while True:
        if i == n or line[i] == fmt.delimiter:
            raw = line[start:i]
            fields.append(Field(raw, None if raw == fmt.null else _unescape(raw)))
            if i == n:
                return fields
            start = i = i + 1
        elif line[i] == "\\":
            if i + 1 >= n:
                return None
            i += 2
        else:
            i += 1


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and raw[j] in "01234567":
                j += 1
            out.append(chr(int(raw[i + 1 : j], 8) & 0xFF))
            i = j
        elif nxt == "x" and i + 2 < n and raw[i + 2] in "0123456789abcdefABCDEF":
            j = i + 2
            while j < n and j < i + 4 and raw[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(raw[i + 2 : j], 16)))
            i = j
        else:
            out.append(_TEXT_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)
