"""The command palette (ctrl+p) reaches every action of the TUI, not only its keys."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from themes import THEMES


class GatewatchCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        commands: list[tuple[str, str, Callable[[], object]]] = [
            ("Sessions", "live and recent sessions (1)", partial(app.action_mode, "sessions")),  # type: ignore[attr-defined]
            ("Approvals", "the approval queue (2)", partial(app.action_mode, "approvals")),  # type: ignore[attr-defined]
            ("Statistics", "sessions, verdicts, refusals (3)", partial(app.action_mode, "stats")),  # type: ignore[attr-defined]
            ("Approve the selected request", "asks for a reason",
             app.approvals_screen.action_approve),  # type: ignore[attr-defined]
            ("Deny the selected request", "asks for a reason",
             app.approvals_screen.action_deny),  # type: ignore[attr-defined]
        ]
        for theme in THEMES:
            commands.append((f"Theme: {theme.name}", "colours of the whole TUI",
                             partial(setattr, app, "theme", theme.name)))
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
