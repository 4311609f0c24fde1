"""The README is true: its "Try it" command runs (twice: a rerun must work too), every Python
block runs in order against the files the README names, and every option its command
synopses show exists in that command's --help."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import streamlens_dist
from streamlens_dist.campaign.cstore import Campaign
from streamlens_dist.campaign.manifest import CaptureEntry
from streamlens_dist.campaign.run import run_campaign
from streamlens_dist.synth import flight_test_capture

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
CLI = str(Path(sys.executable).parent / "streamlens-dist")
pytestmark = pytest.mark.timeout(300)


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)


def try_it_steps() -> list[str]:
    line = next(x.strip() for x in README.splitlines() if x.startswith("    python3 -m venv"))
    return line.split(" && ")


def synopses() -> list[tuple[list[str], str]]:
    """(command words, the synopsis text with its continuation lines) per indented
    `streamlens-dist ...` line of the README."""
    out: list[tuple[list[str], str]] = []
    for line in README.splitlines():
        if line.startswith("    streamlens-dist "):
            words = line.split()[1:]
            cmd = words[:2] if words[0] == "campaign" else words[:1]
            out.append((cmd, line))
        elif out and re.match(r"^ {8,}\[", line):  # a wrapped synopsis goes on
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
    return out


def test_try_it_command_runs_twice(tmp_path: Path) -> None:
    steps = try_it_steps()
    assert steps[:2] == ["python3 -m venv .venv", ".venv/bin/pip install ."], steps
    out = ""
    for attempt in (1, 2):  # the second time over the first run's files
        for step in steps[2:]:
            args = step.split()
            assert args[0] == ".venv/bin/streamlens-dist", step
            r = subprocess.run([CLI, *args[1:]], cwd=tmp_path, capture_output=True, text=True,
                               timeout=240)
            assert r.returncode == 0, (attempt, step, r.stdout, r.stderr)
            out += r.stdout
    assert out.count("Profile: 20,000 frames") == 2  # what the README says it prints
    assert (tmp_path / "demo.html").stat().st_size > 100_000


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory) -> Path:
    """A directory holding every file the README's Python blocks name: the Try-it capture
    and store, a rotated capture of two files, and a campaign store with the README's
    capture id."""
    d = tmp_path_factory.mktemp("readme")
    flight_test_capture(d / "demo.pcap", 20_000, seed=0)
    streamlens_dist.analyze(d / "demo.pcap", d / "demo.zarr", serial=True)
    for i, seed in enumerate((1, 2), 1):
        flight_test_capture(d / f"cap_0000{i}.pcap", 3_000, seed=seed,
                            start_ns=1_767_225_600_000_000_000 + i * 10**12)
    camp = Campaign.create(d / "fleet.zarr", "3", 64 << 20)
    shutil.copy(d / "demo.pcap", d / "f001.pcap")
    camp.add([CaptureEntry("T1-2026-03-01-F001", (str(d / "f001.pcap"),), "T1", "F001",
                           "2026-03-01")])
    run_campaign(d / "fleet.zarr", serial=True)
    return d


def test_python_blocks_run(readme_dir: Path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(readme_dir)
    blocks = python_blocks()
    assert len(blocks) >= 3
    namespace: dict = {"__name__": "readme"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README python block {i + 1}", "exec"), namespace)
        except Exception as exc:  # the block and its error, not just the traceback line
            raise AssertionError(f"README python block {i + 1} failed: {exc!r}\n{block}") \
                from exc


@pytest.mark.parametrize("cmd, synopsis", synopses(), ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_synopsis_options_exist(cmd: list[str], synopsis: str) -> None:
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", synopsis))
    r = subprocess.run([CLI, *cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (cmd, r.stderr)
    missing = sorted(o for o in options if o not in r.stdout)
    assert not missing, f"{' '.join(cmd)} --help lacks {missing} shown in the README"
