"""Text from the record, made safe to print on the operator's terminal.

Statement texts, parameters, errors, application names and command lines come from clients
(and targets). Printed as they are, an escape sequence in them is obeyed by the terminal: it
erases lines, moves the cursor, hides text, sets the window title — so an approver could be
shown a harmless statement drawn over the one that would run. ``safe`` shows every control
character but the line breaks and tabs the CLI lays out itself as a visible escape (``\\x1b``),
and so do C1 controls and the Unicode characters that reorder or hide text.
"""

from __future__ import annotations

import re

# C0 controls but \t and \n, DEL, C1 controls; bidirectional overrides and isolates, and
# zero-width characters, which reorder or hide what is shown.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069"
                     "\ufeff]")


def safe(text: str) -> str:
    """``text`` with what a terminal would act on shown instead."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
