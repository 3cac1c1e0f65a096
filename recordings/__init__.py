"""What both the engine and the TUI read of recorded sessions.

- ``emulator``: the terminal emulator (pyte, hardened) that renders SSH output; the engine reads
  the line a user typed from it, the TUI and replay draw the screen from it — raw escape
  sequences from a recording never reach the operator's terminal.
- ``replay``: a recorded session as a timeline (keyframed terminal for SSH, statements for
  PostgreSQL) that a screen can scrub.
- ``export``: evidence built from the audit chain (asciicast, JSON lines, CSV), checkable later
  against the store.

It sits below the engine and the TUI and above ``store``: it imports neither of them.
"""
