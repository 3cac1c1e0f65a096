"""The operator's terminal UI (Textual): live sessions, the approval queue, statistics, replay.

- ``app.GatewatchApp`` is thin: it registers the themes (``themes/``), keeps the three main
  screens as modes (1 sessions, 2 approvals, 3 statistics), listens to the source, and does all
  I/O in workers whose results it hands to the screens; one handler turns a failed worker into
  an error the operator sees.
- ``screens/``: one module per screen, its layout in a ``.tcss`` beside it. A screen draws what
  it is given and asks the app for the rest through its own ``Message`` classes, handled with
  ``@on`` (``SessionsScreen.Open``, ``SessionScreen.Kill``, ``ApprovalsScreen.Decision``...);
  no screen calls into the app.
- ``widgets/``: widgets that own their rendering and their messages: a recorded terminal drawn
  cell by cell through an emulator, never as raw bytes (``TerminalView``, ARCHITECTURE.md
  invariant 7), and the replay's timeline (``TimelineBar``).
- ``source.py``: where the data comes from. ``LiveSource`` reads live sessions and approvals,
  and sends decisions and kills, over the engine's control socket (``client.py``, which decodes
  the event stream into ``engine.events`` types); it reads history (statements, SSH output,
  statistics) from the store, opened read-only. ``FixedSource`` is deterministic data for
  snapshot tests. Events only mark screens stale: a timer refreshes them at most twice a second
  (approval events at once), so a burst of events never floods the UI.
- ``main.py`` (``gatewatch tui``) and ``replay.py`` (``gatewatch replay``: the replay screen
  alone over a store, no engine) are what the CLI starts.

Of the engine the TUI imports only ``engine.events``; the import-linter contracts in
``pyproject.toml`` hold it to that (ARCHITECTURE.md, layers).
"""
