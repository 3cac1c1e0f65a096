"""The PostgreSQL front end: wire protocol v3 between clients and targets.

The protocol logic is sans-io, in the style of mitmproxy's proxy layers and asyncpg's buffers:

- ``codec`` frames bytes into messages and builds the messages the gateway itself sends;
- ``messages`` decodes the few frontend/backend messages whose contents matter to us;
- ``relay`` is the state machine of an authenticated session: bytes in from either side,
  commands out (forward these bytes, record this statement, tell the client this error);
- ``upstream_auth`` answers the target's SCRAM-SHA-256, MD5 or cleartext challenge;
- ``startup`` runs the handshake on both sides (TLS, the client's token, the target's login);
- ``connection`` is the only code that touches asyncio transports: one instance per client.

Nothing here imports the store directly: statements go to the ``Recorder`` hook, which commits
them (group commit) before ``connection`` lets their bytes reach the target.
"""
