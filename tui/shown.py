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

from engine.shown import escaped


def safe(text: str) -> str:
    """``text`` with what a terminal would act on, or draw as a blank or as nothing, shown
    as an escape instead (``engine.shown.escaped``: line breaks and tabs as they are, a lone
    carriage return as its escape and a line break)."""
    return escaped(text)
