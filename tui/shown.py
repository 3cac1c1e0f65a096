"""Text from clients made safe to show an operator, in the TUI and the CLI (``gatewatch``).

A statement's text is the client's: a control character in it is acted on by a terminal
(erasing lines, moving the cursor), and characters that reorder, hide or only look like blanks
make an approver read something other than what runs: a no-break space in front of
``-- gatewatch: …`` drew a line that looked like the gateway's own note (outside attack round
18). ``safe`` shows each as a visible escape (``\\x1b``, ``\\u00a0``): every control character
but the line breaks and tabs the display lays out itself, C1 controls, Unicode line and
paragraph separators, every blank but the ASCII space, format characters (zero-width, bidi
overrides and isolates, the word joiner, the soft hyphen) and the fillers drawn as nothing.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5"
    "\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u2800\u3000\u3164\ufeff"
    "\uffa0\ufff9-\ufffb]")


def safe(text: str) -> str:
    """``text`` with what a terminal would act on, or draw as a blank or as nothing, shown
    as an escape instead."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
