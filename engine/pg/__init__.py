"""The PostgreSQL front end: wire protocol v3 between clients and targets.

The protocol logic is sans-io, in the style of mitmproxy's proxy layers and asyncpg's buffers:

- ``codec`` frames bytes into messages and builds the messages the gateway itself sends;
- ``messages`` decodes the few frontend/backend messages whose contents matter to us;
- ``relay`` is the state machine of an authenticated session: bytes in from either side,
  commands out (forward these bytes, record these statements first, tell the client this
  error, hold this statement for an approval); it keeps what names mean with ``names`` (a
  change counts once the target confirms it), ``sqlnames`` (PREPARE, EXECUTE, DEALLOCATE in
  SQL text), ``prepared`` (what EXECUTE runs, judged as such) and ``encoding`` (the session's
  client and server encodings: SQL text decoded as the server reads it, names as bytes the
  way it holds them);
- ``rowcount`` counts the rows a write changes for a ``rows_over`` rule: the relay sends it
  behind the gateway's BEGIN or SAVEPOINT, and the count decides COMMIT (or RELEASE) or
  ROLLBACK and a hold;
- ``upstream_auth`` answers the target's SCRAM-SHA-256, MD5 or cleartext challenge.

The I/O around them: ``side`` is the asyncio protocol of one peer (client or target);
``startup`` runs the handshake on both sides (TLS, the client's token, the target's login);
``cancel`` maps the backend keys clients see to the targets' own (CancelRequest); ``catalog``
reads the table columns behind result columns from the target, for column masking; ``results``
is the way back (results masked, then the statements they finish closed); ``held`` is the
statement held for an approval (and the client's Ctrl-C on it); ``connection`` is one client's
session, the ``Transport`` of its ``engine.session.Session``, and wires the two sides to the
relay.

Nothing here opens, reads or writes the store. Statement records are ``store.Op`` values that go
through the ``Recorder`` hook (``engine.recorder``), which commits them (group commit) before
``connection`` lets their bytes reach the target; the front end also catches
``store.StoreError``, so that what cannot be recorded is refused (SQLSTATE 58030), not run.
"""
