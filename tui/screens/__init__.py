"""The TUI's screens: sessions (1), approvals (2), statistics (3), one session's view, a recorded
session's replay, and the prompt for a reason."""
