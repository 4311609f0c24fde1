"""`streamlens-dist sample`: write a small generated flight-test capture to try the tool on."""

from __future__ import annotations

import click

from . import EXIT_OK, cli


@cli.command("sample")
@click.argument("path", default="demo.pcap")
@click.option("--frames", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def sample_cmd(path: str, frames: int, seed: int) -> int:
    """Write a generated flight-test capture (Chapter 10, PTP, IENA, iNET-X and background
    traffic, with injected gaps) to PATH."""
    from ..synth import flight_test_capture

    truth = flight_test_capture(path, frames, seed=seed)
    click.echo(f"wrote {path}: {frames} frames, {len(truth.gaps)} injected gaps")
    return EXIT_OK
