"""Colour themes of the TUI (Textual ``Theme`` objects); they arrive with the TUI (issue 4)."""
