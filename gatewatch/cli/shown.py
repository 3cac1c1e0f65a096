"""Text from the record, made safe to print on the operator's terminal.

Statement texts, parameters, errors, application names and command lines come from clients
(and targets). Printed as they are, an escape sequence in them is obeyed by the terminal: it
erases lines, moves the cursor, hides text, sets the window title — so an approver could be
shown a harmless statement drawn over the one that would run. ``safe`` shows every control
character but the line breaks and tabs the CLI lays out itself as a visible escape (``\\x1b``),
and so do C1 controls, the Unicode characters that reorder or hide text, and every blank
but the ASCII space (``engine.shown.escaped``, which the TUI uses too).
"""

from __future__ import annotations

from engine.shown import escaped as safe

__all__ = ["safe"]
