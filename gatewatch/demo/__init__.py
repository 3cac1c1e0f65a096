"""``gatewatch demo``: a complete local installation that cleans up after itself.

``pgcluster`` runs a throw-away PostgreSQL (also used by the tests and benchmarks), ``tls``
makes a self-signed certificate, ``seed.sql`` holds sample data with personal data in it, and
``run`` wires them to an engine started with the example ``policies.yaml``.
"""
