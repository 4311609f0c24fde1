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

from ..results import json_ready

# Wide enough that no table or line is ever wrapped when the output is not a terminal; rich
# tables take only the width they need, so this is a ceiling, not a size.
_UNWRAPPED = 1 << 16


def console(stderr: bool = False) -> Console:
    """A console for a command's output: long lines are never wrapped (soft wrap), tables fit
    the terminal when there is one and are never folded when piped."""
    c = Console(stderr=stderr, soft_wrap=True)
    return c if c.is_terminal else Console(stderr=stderr, soft_wrap=True, width=_UNWRAPPED)


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
