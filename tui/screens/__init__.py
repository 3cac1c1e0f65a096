"""The TUI's screens: sessions (1), approvals (2), statistics (3), and one session's view."""
