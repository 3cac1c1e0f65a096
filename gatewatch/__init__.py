"""The entry points: the ``gatewatch`` command (``cli``) and the local demo (``demo``).

They sit above everything else — they start the engine, attach the TUI, and read the store —
and nothing imports them (the import-linter contracts in pyproject.toml say so).
"""

import warnings

# As ``engine`` does: cryptography 51 and later warn about DSA names when asyncssh is imported
# (the demo's SSH target imports it too), on stderr that scripts read. Nothing offers DSA.
warnings.filterwarnings("ignore", message=r"DSA is deprecated", module=r"asyncssh(\.|$)")
