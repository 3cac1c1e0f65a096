"""The operator's terminal UI (Textual). Not built yet: it arrives with issue 4.

It will attach to the engine's control socket for live data and read history from ``store``;
it never imports engine internals.
"""
