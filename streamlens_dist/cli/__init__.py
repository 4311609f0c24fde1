"""The `streamlens-dist` command line: a veneer over the Python API, one module per command.

Exit statuses are data: 0 clean; 3 completed, but the input had data problems (damaged or
cut-off records, input files left out, malformed payloads: listed in the summary and the
store); 1 failed (a clear one-line error, nothing written); 2 usage.
"""

from __future__ import annotations

import sys

import click

from ..errors import StreamlensError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DATA_PROBLEMS = 0, 1, 2, 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamlens-dist")
def cli() -> None:
    """Exact inter-arrival statistics and late frames of flight-test packet captures."""


def main() -> None:
    from . import analyze, campaign, report, sample  # noqa: F401  (registers the commands)

    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except StreamlensError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as exc:
        # the output directory not writable, a disk full, a file vanishing mid-run: the
        # system's own message names the path; a traceback would add nothing for the user
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(EXIT_FAILED)
    except MemoryError:
        click.echo("error: out of memory; use a smaller --chunk-size or fewer --workers per "
                   "machine", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code or EXIT_OK)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
