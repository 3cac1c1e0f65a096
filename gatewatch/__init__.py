"""The entry points: the ``gatewatch`` command (``cli``) and the local demo (``demo``).

They sit above everything else — they start the engine, attach the TUI, and read the store —
and nothing imports them (the import-linter contracts in pyproject.toml say so).
"""

# The engine package quiets asyncssh's import-time warnings; the demo imports asyncssh too.
import engine as _engine  # noqa: F401
