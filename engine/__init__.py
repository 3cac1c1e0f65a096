"""Gatewatch's engine: the long-running process in the data path.

Front ends (``engine.pg``; SSH later) accept clients, establish who they are through an
``engine.identity`` provider, check ``engine.config`` policy, connect to the target with the
credential the connection holds, and relay the session through a sans-io protocol layer. Every
statement is handed to the ``engine.recorder`` hook, which group-commits it to ``store`` before
the statement may reach the target. ``engine.engine.Engine`` owns the listeners, the store and
the live sessions; ``gatewatch.cli`` is the ``gatewatch`` command; ``gatewatch.demo`` brings up a
complete local installation. Nothing in ``engine`` imports ``textual`` or ``tui``.
"""
