"""What every command prints through: one console rule (the terminal's width on a terminal,
no wrapping at all in pipes and logs, so an address or a flow name is never split), JSON that
strict parsers accept, and the number formats the tables share."""

from __future__ import annotations

import json
import math
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, ProgressColumn, TaskID
from rich.table import Table
from rich.text import Text

from ..results import json_ready

# Wide enough that no table or line is ever wrapped when the output is not a terminal; rich
# tables take only the width they need, so this is a ceiling, not a size.
_UNWRAPPED = 1 << 16


def console(stderr: bool = False) -> Console:
    """A console for a command's output: long lines are never wrapped (soft wrap), tables fit
    the terminal when there is one and are never folded when piped."""
    # no emoji codes: a MAC address such as 01:00:0c:cd:cd:d0 holds ":cd:"
    c = Console(stderr=stderr, soft_wrap=True, emoji=False)
    return c if c.is_terminal else Console(stderr=stderr, soft_wrap=True, emoji=False,
                                           width=_UNWRAPPED)


def results_table(title: str, columns: list[str], rows: list[list[str]], labels: int) -> Table:
    """A table of results: the first `labels` columns (flow, stream names) are never wrapped,
    the others right-aligned; cells are plain text (capture data may hold "[b]" or ":cd:",
    which rich would read as markup or an emoji code)."""
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, no_wrap=i < labels, justify="left" if i < labels else "right")
    for r in rows:
        table.add_row(*(Text(c) for c in r))
    return table


def print_table(out: Console, table: Table) -> None:
    """A table at the console's width when its values fit in it (headers wrap at spaces),
    else at its natural width: a number or an address cut to "9,57…" would be wrong, a line
    longer than the terminal is only untidy."""
    least = natural = 1  # the left border; each column adds its padding and right border
    for col in table.columns:
        texts = [str(col.header), *(str(c) for c in col.cells)]
        words = texts if col.no_wrap else [w for text in texts for w in text.split()]
        col.min_width = max(len(x) for x in words)  # rich may otherwise cut below it
        least += 3 + col.min_width
        natural += 3 + max(len(x) for x in texts)
    if least > out.width:  # a console that wide on the same stream, with the same colours
        out = Console(file=out.file, width=natural, force_terminal=out.is_terminal,
                      color_system=out.color_system, soft_wrap=True, emoji=False)
    out.print(table)


def echo_json(value: Any) -> None:
    """`value` as indented JSON on stdout: NaN as null (results.json_ready), never `NaN`."""
    click.echo(json.dumps(json_ready(value), indent=2, allow_nan=False, default=str))


def fmt_ms(ns: float | None) -> str:
    """Nanoseconds as milliseconds with three decimals; "-" where there is no value."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return "-"
    return f"{ns / 1e6:,.3f}"


class _LazyProgress(Progress):
    """Shows nothing until its first task: a command that fails before any progress prints
    no empty bar (rich's blank line before the `error:` line)."""

    def __enter__(self) -> _LazyProgress:
        return self

    def stop(self) -> None:
        if self.live.is_started:
            super().stop()

    def add_task(self, *args: Any, **kwargs: Any) -> TaskID:
        if not self.disable and not self.live.is_started:
            self.start()
        return super().add_task(*args, **kwargs)


def progress_bar(console: Console, quiet: bool, *columns: ProgressColumn) -> Progress:
    """Progress bars on `console` (stderr), shown from the first task on; none when quiet."""
    return _LazyProgress(*columns, console=console, disable=quiet, transient=False)
