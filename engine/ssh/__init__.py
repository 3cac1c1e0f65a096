"""The SSH front end: an asyncssh server in front of SSH targets.

One ``SshSession`` per client connection (``session.py``) owns the identity, the connection to
the target (``upstream.py``), the recording (``tape.py``) and the session's registration with
the engine. Each channel the client opens becomes a ``ChannelBridge`` (``bridge.py``) that opens
the same kind of channel on the target and relays bytes both ways, with flow control in both
directions: a side that stops reading stops the other side (nothing is buffered without bound).
Exec commands are judged before the target sees them; in an interactive shell, the line shown by
a terminal emulator fed with the output (``lines.py``) is judged when the user presses Enter.
Port forwarding (``forward.py``) reaches only the connection's allowed destinations.
``server.py`` is the asyncssh ``SSHServer``: authentication, throttling and channel requests.
"""
