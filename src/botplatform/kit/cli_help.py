"""How the `botplatform` command lists its sub-commands: each with its whole first sentence,
wrapped to the terminal, instead of click's summary cut at a fixed width with "..."."""

from __future__ import annotations

from typer._click import Context, HelpFormatter
from typer.core import TyperGroup

WHOLE_SENTENCE = 10_000  # a summary limit no first sentence reaches


class Group(TyperGroup):
    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(WHOLE_SENTENCE)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
