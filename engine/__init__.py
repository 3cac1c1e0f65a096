"""Gatewatch's engine: the long-running process in the data path (``gatewatch engine``).

Two front ends accept clients: ``engine.pg`` (PostgreSQL wire protocol v3) and ``engine.ssh``
(an asyncssh server). Each does only its protocol's I/O and hands the rest to the
protocol-neutral session core, ``engine.session.Session``: who the user is
(``engine.identity``), whether they may use the connection (``engine.config``, the policies
file), the session's records, approval requests (``engine.approvals``), masking of the texts it
records, events for operators (``engine.events``) and ending the session. The features are
sans-io modules the front ends call: ``engine.guardrail`` judges SQL and shell command lines,
``engine.masking`` rewrites what targets send. Every statement or command goes to the
``engine.recorder`` hook, which group-commits it to ``store`` before it may reach the target.
``engine.engine.Engine`` owns the store, the listeners and the live sessions, ``engine.control``
serves the control API to the TUI and the CLI, and ``engine.serve`` runs it all until a signal.

Layers point down (ARCHITECTURE.md; the import-linter contracts in pyproject.toml): the engine
reads ``recordings`` and ``store`` and never imports ``tui``, ``themes``, ``textual`` or the
entry points in ``gatewatch``; inside it, the front ends sit above the session core, then
approvals, identity, the policies file, masking and the guardrails, in that order.
"""

import warnings

import store.compiled

# The compiled build of the hot modules, or their .py files when it is off or stale.
store.compiled.install()

# asyncssh names DSA key types in its annotations, and cryptography 51 and later warn at each such
# name when asyncssh is imported. The operator cannot act on that, and it would land on stderr
# ahead of the engine's own messages, which scripts read. Gatewatch never offers or accepts DSA.
warnings.filterwarnings("ignore", message=r"DSA is deprecated", module=r"asyncssh(\.|$)")
