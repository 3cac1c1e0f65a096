"""The operator's TUI: a thin App over screens, themes and a data source.

Live data comes from the engine's control socket (``tui.source.LiveSource``), history from the
store; the App never imports engine internals. Events arrive typed (``engine.events``) and mark
what is stale; a timer refreshes stale screens at most twice a second, so a burst of events
never floods the UI. Screens ask for what they cannot do themselves (open a session, decide a
request, kill a session, follow a live one) with their own messages, handled here with ``@on``.

While the engine is unreachable what the screens show is what was true when it was lost: the
sub-title says since when, the pending count is "as of" then, and live or waiting sessions are
marked as not known to be so (``set_stale``). How a request left the queue comes from the
engine's ``approval.decided`` event (the store may not have it yet): approved, denied, expired
or withdrawn by its client — never "denied" nor "decided elsewhere" for a client's cancel.
Toasts are few and short: at most ``MAX_TOASTS`` at once (the oldest goes), at the bottom
right, which on the approvals screen is the list of recent decisions, not the queue nor the
statement being decided (the approve/deny prompt also shows that statement itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.notifications import Notify
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from engine.events import (
    ApprovalDecided,
    ApprovalRequested,
    ApprovalVoted,
    Event,
    PolicyReloaded,
)
from recordings.replay import SessionNotFound, open_timeline
from store import StoreError, open_store
from themes import DEFAULT, THEMES
from tui import timefmt
from tui.client import EngineGone, Refused, refused_message
from tui.commands import GatewatchCommands
from tui.screens.approvals import ApprovalsScreen, outcome
from tui.screens.replay import ReplayScreen
from tui.screens.session import SessionScreen
from tui.screens.sessions import SessionsScreen
from tui.screens.stats import StatsScreen
from tui.source import Source

RETRY_MAX = 8.0
MAX_TOASTS = 3  # more would hide the screen; the approvals list keeps what they said


class GatewatchApp(App[None]):
    TITLE = "Gatewatch"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {GatewatchCommands}
    BINDINGS = [
        Binding("1", "mode('sessions')", "Sessions", id="app.sessions"),
        Binding("2", "mode('approvals')", "Approvals", id="app.approvals"),
        Binding("3", "mode('stats')", "Statistics", id="app.stats"),
        Binding("question_mark", "toggle_keys", "Keys", id="app.keys"),
        # Before the screens' own Esc (back, clear the filter): while the keys panel is open,
        # Esc closes it (check_action lets the key through to the screen otherwise).
        Binding("escape", "hide_keys", "Close keys", show=False, priority=True,
                id="app.hide-keys"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, source: Source, *, clock: Callable[[], float] = time.time,
                 theme: str = DEFAULT, live: bool = True, hint: str | None = None) -> None:
        super().__init__()
        self.hint = hint
        self.source = source
        self.now = clock
        self._theme_name = theme
        self._live = live  # False: no event listener and no timers (snapshot tests)
        self.sessions_screen = SessionsScreen(hint, clock=clock)
        self.approvals_screen = ApprovalsScreen(clock=clock)
        self.stats_screen = StatsScreen(clock=clock)
        self.stale = {"sessions", "approvals", "stats"}
        self.pending_ids: set[str] = set()
        self.decided_here: set[str] = set()  # no "left the queue" note for our own decisions
        self.approvals_screen.decided_here = self.decided_here  # the same set: "You decided"
        self.outcomes: dict[str, dict[str, Any]] = {}  # request id → as the engine decided it
        self.connected = False
        self.unreachable_since: float | None = None
        self.pending_count = 0

    def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = self._theme_name
        self.add_mode("sessions", lambda: self.sessions_screen)
        self.add_mode("approvals", lambda: self.approvals_screen)
        self.add_mode("stats", lambda: self.stats_screen)
        self.switch_mode("sessions")
        if self._live:
            self.listen()
            self.set_interval(0.5, self._refresh_stale)
            self.set_interval(5.0, self._refresh_all)
        else:
            self.refresh_data()

    # --- navigation -------------------------------------------------------------------------

    def _keys_shown(self) -> bool:
        return bool(self.screen.query("HelpPanel"))

    def action_toggle_keys(self) -> None:
        """``?`` opens the keys panel and closes it again (issue 16: it only opened)."""
        if self._keys_shown():
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_hide_keys(self) -> None:
        self.action_hide_help_panel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_keys":
            return self._keys_shown()
        return True

    def action_mode(self, mode: str) -> None:
        if mode == "approvals":  # the queue shows them now: their toasts would only cover it
            for note in [n for n in self._notifications if n.title == "Approval requested"]:
                self._unnotify(note, refresh=False)
            self._refresh_notifications()
        self.switch_mode(mode)
        self.stale.add(mode)
        self.refresh_data()

    @on(SessionsScreen.Open)
    def open_session(self, message: SessionsScreen.Open) -> None:
        """A live session's view; a recorded one's replay (when the store can be read)."""
        row = message.session
        if row.get("status") != "live" and self.source.store_path() is not None:
            self.open_replay(str(row["id"]))
            return
        screen = SessionScreen(row, follow=self._live)
        self.push_screen(screen)
        self.load_statements(screen)

    def open_replay(self, session_id: str) -> None:
        path = self.source.store_path()
        if path is None:
            self.notify("replay needs the engine's store", severity="warning")
            return
        store = open_store(path, readonly=True)
        try:
            timeline = open_timeline(store, session_id)
            row = store.find_session(timeline.session.id) or {"id": session_id}
        except (SessionNotFound, StoreError) as exc:
            store.close()
            self.notify(str(exc), title="Replay", severity="error")
            return
        # The screen owns the store from here and closes it when it goes away.
        self.push_screen(ReplayScreen(store, timeline, row, live=self._live, standalone=False))

    # --- data ---------------------------------------------------------------------------

    @work(exclusive=True, group="events", exit_on_error=False)
    async def listen(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.source.connect()
                self._banner(None)
                self.connected = True
                self._set_stale(None)
                delay = 0.5
                self.stale.update({"sessions", "approvals", "stats"})
                self.refresh_data()
                while True:
                    for event in await self.source.next_events():
                        self._on_event(event)
            except Refused as exc:  # the hello: a wrong token, or one a restart made stale
                self.connected = False
                self.exit(return_code=1, message=f"gatewatch: {refused_message(str(exc))}")
                return
            except EngineGone as exc:
                self.connected = False
                self._set_stale(self.unreachable_since or self.now())
                self._banner(f"⚠ engine unreachable since "
                             f"{timefmt.clock_of(self.unreachable_since or self.now())} UTC "
                             f"({exc}) — what is shown is as of then; retrying in {delay:g} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            except Exception as exc:  # a bug must not end live updates for the rest of the night
                self.connected = False
                self.notify(f"{type(exc).__name__}: {exc} — reconnecting", title="Error",
                            severity="error")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _on_event(self, event: Event) -> None:
        match event:
            case ApprovalRequested(request=request):
                self._approvals_changed()
                self.bell()
                # On the approvals screen the request is in the queue already: no toast.
                if self.current_mode != "approvals":
                    self.notify(f"{request.get('requester')} asks to run a statement on "
                                f"{request.get('connection')} — press 2",
                                title="Approval requested", timeout=8)
            case ApprovalDecided(request=request):
                # when: the event's moment until the store's decided_at is read (the event
                # has none, and the list would say when it was asked instead)
                self.outcomes[str(request.get("id"))] = {
                    **request,
                    "decided_at": request.get("decided_at") or timefmt.iso_of(self.now())}
                self._approvals_changed()
            case ApprovalVoted():
                self._approvals_changed()
            case PolicyReloaded(status=status, by=by, message=message):
                # Every operator hears of a policy change (or a refused one), whoever made it.
                self.notify(f"{message} (by {by})", title=f"Policy reload {status}",
                            severity="information" if status == "applied" else "warning",
                            timeout=10)
            case _:  # the rest change the sessions list: the timer refreshes it, coalesced
                pass
        self.stale.add("sessions")

    def _approvals_changed(self) -> None:
        self.stale.add("approvals")
        self.refresh_data()  # at once: an operator waits for these, not for the timer

    def _refresh_stale(self) -> None:
        if self.stale and self.connected:
            self.refresh_data()

    def _refresh_all(self) -> None:
        self.stale.update({"sessions", "approvals"})

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def refresh_data(self) -> None:
        stale, self.stale = self.stale, set()
        now = self.now()
        approvals = await self.source.approvals()
        self.approvals_screen.show(approvals, now, self.outcomes)
        self._pending(approvals)
        if "sessions" in stale:
            self.sessions_screen.show(await self.source.sessions(), now)
        if "stats" in stale:
            self.stats_screen.show(await self.source.stats())

    def _pending(self, approvals: dict[str, Any]) -> None:
        pending = approvals.get("pending", [])
        ids = {r["id"] for r in pending}
        gone = self.pending_ids - ids - self.decided_here
        if gone:
            recent = {r["id"]: r for r in approvals.get("recent", [])}
            # One toast for all that left together (a burst must not stack a toast each).
            said = [f"{rid}: {outcome(self.outcomes.get(rid) or recent.get(rid) or {})}"
                    for rid in sorted(gone)]
            self.notify("\n".join(said), title=f"Left the queue ({len(said)})"
                        if len(said) > 1 else "Left the queue", timeout=5)
        self.pending_ids = ids
        self.pending_count = len(pending)
        self._sub_title()

    def _sub_title(self) -> None:
        n = self.pending_count
        if self.unreachable_since is not None:  # short: 80 columns cut the header's end
            self.sub_title = (f"⚠ STALE since {timefmt.clock_of(self.unreachable_since)} UTC"
                              f" · {n or 'none'} pending then")
        else:
            self.sub_title = (f"{n} pending approval{'s' if n != 1 else ''}" if n
                              else "no pending approvals")

    def _set_stale(self, since: float | None) -> None:
        """Mark what is shown as stale since ``since`` (None: fresh again)."""
        if since == self.unreachable_since:
            return
        self.unreachable_since = since
        self.sessions_screen.set_stale(since)
        self.approvals_screen.set_stale(since)
        self._sub_title()

    def on_notify(self, event: Notify) -> None:
        """At most ``MAX_TOASTS`` at once: the oldest goes (issue 16: toasts stacked up)."""
        # Runs before App's own handler adds the new one (subclass first), so room is made
        # for it. Textual keeps notifications in order of arrival but offers no public way to
        # drop one: this reaches into its collection (to revisit when Textual upgrades).
        while len(self._notifications) >= MAX_TOASTS:
            self._unnotify(next(iter(self._notifications)), refresh=False)

    @on(SessionScreen.Stale)
    def session_stale(self, message: SessionScreen.Stale) -> None:
        self.load_statements(message.session_screen)

    @work(exclusive=True, group="session", exit_on_error=False)
    async def load_statements(self, screen: SessionScreen) -> None:
        sid = screen.session["id"]
        screen.show(await self.source.statements(sid))
        if screen.ssh:
            screen.show_output(await self.source.output(sid, screen.last_chunk))

    @on(ApprovalsScreen.Decision)
    def decided(self, message: ApprovalsScreen.Decision) -> None:
        self.decide(message.request_id, message.approve, message.reason)

    @work(group="decide", exit_on_error=False)
    async def decide(self, request_id: str, approve: bool, reason: str | None) -> None:
        self.decided_here.add(request_id)
        result = await self.source.decide(request_id, approve, reason)
        status = result.get("status") if isinstance(result, dict) else "done"
        self.notify(f"{request_id}: {status}", title="Approved" if approve else "Denied")
        self.stale.update({"approvals", "sessions"})
        self.refresh_data()

    @on(SessionScreen.Kill)
    def kill_session(self, message: SessionScreen.Kill) -> None:
        self.kill(message.session_id, message.reason, message.lock_out, message.scope)

    @work(group="kill", exit_on_error=False)
    async def kill(self, session_id: str, reason: str | None, lock_out: str | None,
                   scope: str) -> None:
        result = await self.source.kill(session_id, reason, lock_out, scope)
        lockout = result.get("lockout") if isinstance(result, dict) else None
        said = f"session {session_id[:12]} killed"
        if lockout:
            where = lockout["connection"] or "every connection"
            said += (f"; {lockout['identity']} locked out of {where} until "
                     f"{lockout['until'][11:16]} UTC (gatewatch unlock {lockout['id']})")
        self.notify(said, title="Killed")
        if isinstance(self.screen, SessionScreen):
            self.pop_screen()
        self.stale.add("sessions")
        self.refresh_data()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker becomes something the operator sees."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, Refused):
            self.notify(str(error), title="Refused", severity="error", timeout=8)
        elif isinstance(error, EngineGone):
            self._set_stale(self.unreachable_since or self.now())
            self._banner(f"⚠ engine unreachable ({error}) — what is shown is as of "
                         f"{timefmt.clock_of(self.unreachable_since or self.now())} UTC")
        else:
            self.notify(f"{type(error).__name__}: {error}", title="Error", severity="error")

    def _banner(self, text: str | None) -> None:
        for screen in (self.sessions_screen, self.approvals_screen, self.stats_screen,
                       self.screen):
            try:
                banner = screen.query_one("#banner", Static)
            except Exception:  # a screen not mounted yet, or a modal without a banner
                continue
            banner.update(text or "")
            banner.set_class(text is not None, "shown")
