"""A statement's text as a person is shown it: its lines kept, what a display acts on escaped.

PostgreSQL ends a ``--`` comment at a line break (``\\n`` or ``\\r``). Text re-flowed onto one
line (``" ".join(text.split())``) loses that end: ``SELECT setval('s', 2001) -- ticket`` and a
next line ``, setval('s', 1)`` read as one setval with a trailing comment, and an approver
approved the second setval unseen (outside attack, round 18). So statement text is never
re-flowed for an approver or an operator: ``block`` shows it line by line, each line numbered,
so that a line the terminal wraps cannot pass for one of the statement's and no comment can
reach past its own line; ``one_line`` (a table's cell) marks each line break with ``⏎``.

Control characters are shown as escapes (``\\x1b``), as are C1 controls and the characters
that reorder or hide text (bidirectional overrides, zero-width characters) and the Unicode
line and paragraph separators: printed as they are, a terminal obeys or hides them. A
carriage return not followed by a line feed ends a ``--`` comment for PostgreSQL but not for a
display: it is shown as ``\\x0d`` and a line break.
"""

from __future__ import annotations

import re

# C0 controls but \t and \n, DEL, C1 controls; every blank but the ASCII space, format
# characters (zero-width, bidirectional overrides and isolates, the word joiner, the soft
# hyphen), the fillers drawn as nothing, and the line and paragraph separators: a no-break
# space in front of ``-- gatewatch: …`` drew a line that looked like the gateway's own note
# (outside attack round 18).
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5"
    "\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u2800\u3000\u3164\ufeff"
    "\uffa0\ufff9-\ufffb]")
_BREAK = "⏎"  # a line break in a one-line form (itself escaped where the text has one)


def escaped(text: str) -> str:
    """``text`` with every character a display would act on or hide shown as an escape;
    ``\\r\\n`` is a line break, a lone ``\\r`` its escape and a line break (where PostgreSQL
    ends a comment, the reader sees a line end)."""
    text = text.replace("\r\n", "\n")
    text = text.replace("\r", "\\x0d\n")
    return UNSAFE.sub(_escape, text)


def lines(text: str) -> list[str]:
    """The lines of ``text`` as PostgreSQL ends a comment, escaped (``escaped``)."""
    return escaped(text).split("\n")


def block(text: str, indent: str = "    ", limit: int | None = None) -> str:
    """``text`` line by line, each numbered under ``indent`` (``   1│ SELECT …``); over
    ``limit`` lines, the rest is counted, not shown."""
    found = lines(text)
    width = len(str(len(found)))
    shown = found if limit is None else found[:limit]
    out = [f"{indent}{n:>{width}}│ {line}".rstrip() for n, line in enumerate(shown, 1)]
    if len(shown) < len(found):
        rest = len(found) - len(shown)
        out.append(f"{indent}{'':>{width}}… {rest} more line{'s' if rest != 1 else ''}")
    return "\n".join(out)


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line for a table's cell: each line break shown as `` ⏎ `` (a ``⏎`` of
    the text's own as its escape), tabs as spaces; cut at ``limit`` characters with ``…``."""
    parts = [line.replace(_BREAK, "\\u23ce").replace("\t", " ") for line in lines(text)]
    while parts and not parts[-1].strip():
        parts.pop()  # a statement's trailing line breaks mark nothing
    flat = f" {_BREAK} ".join(p.strip() for p in parts)
    if limit is not None and len(flat) > limit:
        return flat[:limit] + "…"
    return flat


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
