"""The SSH front end: an asyncssh server in front of SSH targets.

``server.py`` is the asyncssh ``SSHServer`` of one client connection. It authenticates (the
identity's token as the password or keyboard-interactive answer, or a public key registered to
the identity; failures are answered late and the client is disconnected after
``login_attempts``) and answers channel requests: a session channel becomes a
``ChannelBridge``; a local forward (``ssh -L``) is resolved once, checked against the
connection's ``forward`` destinations, judged and recorded like a command, then tunnelled
through the target; a remote forward (``-R``) is refused and recorded. Agent and X11 forwarding
are turned off where the engine opens the listener.

``session.py``: one ``SshSession`` per client connection, the SSH ``Transport`` of the
protocol-neutral ``engine.session.Session`` (identity, records, approvals, masking of texts,
events, termination). It owns the connection to the target (``upstream.py``: the connection's
key or password, the target's host key checked against its ``known_hosts`` with no trust on
first use), the recording of the session's bytes (``tape.py``: batched chunks, with
back-pressure when the store falls behind), and the admission of what its channels run.

``bridge.py``: one ``ChannelBridge`` per channel, the asyncssh side of it. It opens the same
kind of channel on the target (an exec command is judged and recorded, an sftp subsystem
recorded, before it does), relays bytes both ways with flow control in both directions (a side
that stops reading stops the other; nothing is buffered without bound), and masks output
(``engine.masking.stream``) before the client sees it and before it is recorded, except file
transfers, which reach the client unchanged and are recorded masked. What the client sends goes
through the channel's ``InputGate`` (``gate.py``), the sans-io core of SSH input: at a terminal
the line shown by a terminal emulator fed with the output (``lines.py``) is judged when the user
presses Enter; without a terminal each line is judged before the target reads it; input behind a
line waits until the line is judged. ``hostkey.py`` keeps the gateway's own host key, made once
so that users can pin it.
"""
