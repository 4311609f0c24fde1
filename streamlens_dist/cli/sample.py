"""`streamlens-dist sample`: write a small generated flight-test capture to try the tool on."""

from __future__ import annotations

import click

from . import EXIT_OK, cli


@cli.command("sample")
@click.argument("path", default="demo.pcap")
@click.option("--frames", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing file at PATH.")
def sample_cmd(path: str, frames: int, seed: int, overwrite: bool) -> int:
    """Write a generated flight-test capture (Chapter 10, PTP, IENA, iNET-X and background
    traffic, with injected gaps) to PATH.

    Exit status: 0 written; 1 PATH exists (without --overwrite), is a directory or a link, or
    cannot be written."""
    from ..outputs import check_file_target
    from ..store import atomic_path
    from ..synth import flight_test_capture

    target = check_file_target(path, overwrite=overwrite, what="the sample capture")
    with atomic_path(target) as tmp:  # an interrupted run leaves no half-written capture
        truth = flight_test_capture(tmp, frames, seed=seed)
    click.echo(f"wrote {path}: {frames} frames, {len(truth.gaps)} injected gaps")
    return EXIT_OK
