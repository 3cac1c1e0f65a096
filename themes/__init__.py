"""Colour themes of the TUI, registered with Textual. Layout lives in .tcss files beside the
screens and uses only theme variables ($primary, $error, ...), so a theme changes every colour.
"""

from textual.theme import Theme

GATEWATCH_DARK = Theme(
    name="gatewatch-dark",
    primary="#5fafff",
    secondary="#87afaf",
    accent="#ffaf5f",
    warning="#ffd75f",
    error="#ff5f5f",
    success="#5fd787",
    foreground="#dadada",
    background="#121212",
    surface="#1c1c1c",
    panel="#262626",
    dark=True,
)

GATEWATCH_LIGHT = Theme(
    name="gatewatch-light",
    primary="#005faf",
    secondary="#5f8787",
    accent="#af5f00",
    warning="#875f00",
    error="#af0000",
    success="#005f00",
    foreground="#1c1c1c",
    background="#f5f5f5",
    surface="#ffffff",
    panel="#e4e4e4",
    dark=False,
)

GATEWATCH_CONTRAST = Theme(
    name="gatewatch-high-contrast",
    primary="#ffff00",
    secondary="#00ffff",
    accent="#ff00ff",
    warning="#ffff00",
    error="#ff0000",
    success="#00ff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#000000",
    dark=True,
)

THEMES = (GATEWATCH_DARK, GATEWATCH_LIGHT, GATEWATCH_CONTRAST)
DEFAULT = GATEWATCH_DARK.name
