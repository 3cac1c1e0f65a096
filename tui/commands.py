"""The command palette (ctrl+p) reaches every action of the TUI, not only its keys.

The app's own commands (screens, themes) are here; a screen offers its own while it is shown
(``ApprovalsScreen.COMMANDS``: approve, deny), through the same ``CommandList``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from themes import THEMES

# (name, help, what it does)
Command = tuple[str, str, Callable[[], object]]


class CommandList(Provider):
    """A palette provider over a list of commands, matched by name."""

    def commands(self) -> list[Command]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for name, help_text, callback in self.commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class GatewatchCommands(CommandList):
    def commands(self) -> list[Command]:
        app = self.app
        # The same actions as the keys 1, 2 and 3 (GatewatchApp.BINDINGS).
        commands: list[Command] = [
            ("Sessions", "live and recent sessions (1)",
             partial(app.run_action, "mode('sessions')")),
            ("Approvals", "the approval queue (2)", partial(app.run_action, "mode('approvals')")),
            ("Statistics", "sessions, verdicts, refusals (3)",
             partial(app.run_action, "mode('stats')")),
        ]
        for theme in THEMES:
            commands.append((f"Theme: {theme.name}", "colours of the whole TUI",
                             partial(setattr, app, "theme", theme.name)))
        return commands
