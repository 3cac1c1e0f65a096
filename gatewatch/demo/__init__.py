"""``gatewatch demo``: a complete local installation in a sandbox of its own that cleans up
after itself.

``run`` brings it up and tears it down on every way out (``q``, SIGINT, SIGTERM, SIGHUP) and
prints where everything is; ``policies`` writes the policies file the demo's engine runs (the
example with the sandbox filled in); ``pgcluster`` runs a throw-away PostgreSQL (also used by
the tests and benchmarks), seeded from ``seed.sql`` with sample personal data; ``sshtarget`` is
the SSH host, whose shells run as the unprivileged account ``account`` makes; ``oidc`` is an
OpenID provider on loopback; ``tls`` makes a self-signed certificate; ``tui`` runs the
operator's TUI as the demo's approver.
"""
