"""Statement texts as they are recorded: literals the detectors find, and passwords, masked.

The record keeps what a user ran, but not the secrets in it (ARCHITECTURE.md invariant 6):

- a string literal right after the word ``password`` (``CREATE ROLE ... PASSWORD 'x'``,
  ``ALTER USER ... ENCRYPTED PASSWORD '...'``, ``OPTIONS (password 'x')`` of a user mapping) is
  always masked, whatever the session's masking rules: it is a credential;
- every literal (string, number, bit string) is read by the value detectors as the value the
  server sees (quotes undone, ``E''`` escapes kept as written), and literals written in pieces
  (``'4111' || '111111111111'``) are read joined as well: a value found across pieces masks
  each piece;
- the rest of the text (comments, identifiers) is masked as any text is.

PostgreSQL's own scanner (pglast) cuts the text into tokens, so a quote inside a comment or a
dollar-quoted body does not confuse it; a text it cannot scan is masked as plain text. The
approver of a held statement still sees it exactly (``Session.ask``).
"""

from __future__ import annotations

import re
from typing import Protocol

from pglast.parser import scan

PASSWORD_MASK = "****"
_LITERALS = frozenset({"SCONST", "USCONST", "FCONST", "ICONST", "BCONST", "XCONST"})
_MAX_SCANNED = 1 << 20  # longer texts are masked as plain text (the scanner is not free)


class Values(Protocol):
    def mask(self, text: str) -> tuple[str, list[str]]: ...


def mask_statement(text: str, values: Values | None) -> tuple[str, list[str]]:
    """``text`` with secrets masked, and the detectors that fired (``password`` for a
    password literal)."""
    if len(text) > _MAX_SCANNED or ("'" not in text and "$" not in text and not _digits(text)):
        return values.mask(text) if values is not None else (text, [])
    raw = text.encode("utf-8", "surrogateescape")
    try:
        tokens = scan(text)
    except Exception:  # the scanner refused it: masked as plain text
        return values.mask(text) if values is not None else (text, [])
    fired: list[str] = []
    replace: dict[int, tuple[int, bytes]] = {}  # token start → (end, new bytes)
    previous = ""
    pieces: list[tuple[int, int, str]] = []  # string literals: start, end, content
    for token in tokens:
        start, end = token.start, token.end + 1
        word = raw[start:end]
        if token.name in _LITERALS:
            content = _content(word.decode("utf-8", "surrogateescape"))
            if previous == "password" and token.name in ("SCONST", "USCONST"):
                replace[start] = (end, f"'{PASSWORD_MASK}'".encode())
                fired.append("password")
            elif values is not None:
                masked, names = values.mask(content)
                if names:
                    fired += names
                    replace[start] = (end, _quote(masked, token.name))
                if token.name in ("SCONST", "USCONST"):
                    pieces.append((start, end, content))
        previous = word.decode("utf-8", "surrogateescape").lower()
    if values is not None and len(pieces) > 1:
        _joined(pieces, values, replace, fired)
    if replace:
        out: list[bytes] = []
        pos = 0
        for start in sorted(replace):
            end, new = replace[start]
            out += [raw[pos:start], new]
            pos = end
        out.append(raw[pos:])
        text = b"".join(out).decode("utf-8", "surrogateescape")
    if values is not None:
        text, names = values.mask(text)  # comments, identifiers, what the scanner left
        fired += names
    return text, fired


def _joined(pieces: list[tuple[int, int, str]], values: Values,
            replace: dict[int, tuple[int, bytes]], fired: list[str]) -> None:
    """Literals written in pieces: a value found across pieces masks each of them."""
    joined = "".join(p[2] for p in pieces)
    masked, names = values.mask(joined)
    if not names or masked == joined:
        return
    offset = 0
    for start, end, content in pieces:
        part = masked[offset:offset + len(content)] if len(masked) == len(joined) else None
        offset += len(content)
        if start in replace:
            continue
        if part is None or part != content:
            replace[start] = (end, f"'{PASSWORD_MASK}'".encode())
            fired.append(names[0])


def _content(token: str) -> str:
    """What a literal token says, as the server reads it: quotes undone, pieces continued
    across a line break joined (``'4012'`` newline ``'8888…'`` is one string), and the escapes
    of ``E''`` and ``U&''`` strings decoded (``E'\\x34'``, ``U&'\\0034'`` are a 4); what
    cannot be decoded is left as written."""
    escaped = token[:1] in "eE" and token[1:2] == "'"
    unicode = token[:2] in ("U&", "u&") and token[2:3] == "'"
    if token[:1] in "eEbBxXuU" and token[1:2] in ("'", "&"):
        token = token[1:] if token[1:2] == "'" else token[2:]
    if token.startswith("'") and token.endswith("'") and len(token) >= 2:
        body = "".join(_CONTINUED.split(token[1:-1]))
        body = body.replace("''", "'")
        if escaped:
            return _unescape(body)
        if unicode:
            return _unicode(body)
        return body
    if token.startswith("$"):
        tag_end = token.find("$", 1)
        if tag_end > 0:
            return token[tag_end + 1 : len(token) - (tag_end + 1)]
    return token


_CONTINUED = re.compile(r"'[ \t\f\r]*\n\s*'")  # a string continued on the next line
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{1,2})|([0-7]{1,3})|u([0-9A-Fa-f]{4})"
                     r"|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_UNICODE = re.compile(r"\\(?:\+([0-9A-Fa-f]{6})|([0-9A-Fa-f]{4})|(\\))")


def _char(code: int) -> str:
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return "\ufffd"


def _unescape(body: str) -> str:
    """An ``E''`` string's backslash escapes, decoded as PostgreSQL does."""
    def one(m: re.Match[str]) -> str:
        hexa, octal, short, long, other = m.groups()
        if hexa or octal or short or long:
            return _char(int(hexa or short or long, 16) if not octal else int(octal, 8))
        return _SIMPLE.get(other, other)

    return _ESCAPE.sub(one, body)


def _unicode(body: str) -> str:
    """A ``U&''`` string's escapes (``\\XXXX``, ``\\+XXXXXX``), decoded."""
    def one(m: re.Match[str]) -> str:
        six, four, backslash = m.groups()
        return "\\" if backslash else _char(int(six or four, 16))

    return _UNICODE.sub(one, body)


def _quote(masked: str, kind: str) -> bytes:
    if kind in ("FCONST", "ICONST"):
        return f"'{masked}'".encode("utf-8", "surrogateescape")
    return ("'" + masked.replace("'", "''") + "'").encode("utf-8", "surrogateescape")


def _digits(text: str) -> bool:
    return any(ch.isdigit() for ch in text)
