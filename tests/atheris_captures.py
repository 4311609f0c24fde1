"""Coverage-guided fuzzing of the capture readers, the splitter and the dissectors (optional;
not collected by pytest). Seeded with the real captures in tests/captures, copied into a
temporary corpus directory unless one is given:

    .venv/bin/pip install atheris
    .venv/bin/python tests/atheris_captures.py -atheris_runs=200000 -max_len=16384 \
        -rss_limit_mb=4096 [CORPUS_DIR]

Crash reproducers go to $TMPDIR/streamlens-atheris-artifacts/ unless -artifact_prefix is given.
(libFuzzer's own memory grows with the inputs it keeps, about 0.2 MB per run at
-max_len=16384; the analysis itself stays flat, which tests/test_fuzz_captures.py and a plain
loop show. ~50-100 runs/s on one core.)

Each input is written to a file and analysed in-process (splitter, compiled and Python record
walks, columnar and per-frame dissection, partials, outliers, result tables). A crash is any
exception other than our documented `StreamlensError`s, or a difference between the compiled
and the Python splitter scans.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["streamlens_dist"]):
    from streamlens_dist.capture import columns, split
    from streamlens_dist.engine import run_serial
    from streamlens_dist.errors import StreamlensError
    from streamlens_dist.results import build_tables
    from streamlens_dist.settings import Settings

CAPTURES = Path(__file__).resolve().parent / "captures"
WORK = Path(tempfile.mkdtemp(prefix="streamlens-atheris-"))
SETTINGS = Settings()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    chunk_size = fdp.ConsumeIntInRange(1, 1 << 16)
    path = WORK / "input.cap"
    path.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    try:
        plan = split.plan_capture([path], chunk_size)
    except StreamlensError:
        return
    fast = split.scan_file(str(path), chunk_size)
    saved, columns._walk = columns._walk, None
    try:
        slow = split.scan_file(str(path), chunk_size)
    finally:
        columns._walk = saved
    if (fast.chunks, fast.problems) != (slow.chunks, slow.problems):
        raise AssertionError("compiled and Python splitter scans differ")
    merged, outliers = run_serial(plan, SETTINGS)
    build_tables(merged, Fraction(SETTINGS.sigma), outliers)


def main() -> None:
    args = sys.argv[1:]
    if not any(a.startswith("-artifact_prefix=") for a in args):
        # crash reproducers outlive the run, but not in the work tree
        artifacts = Path(tempfile.gettempdir()) / "streamlens-atheris-artifacts"
        artifacts.mkdir(exist_ok=True)
        args.insert(0, f"-artifact_prefix={artifacts}/")
    if not any(not a.startswith("-") for a in args):  # no corpus given: seed one
        corpus = WORK / "corpus"
        corpus.mkdir()
        for p in sorted(CAPTURES.glob("*.pcap*")):
            if p.stat().st_size <= 256 * 1024:
                shutil.copy(p, corpus / p.name)
        args.append(str(corpus))
    try:
        atheris.Setup([sys.argv[0], *args], test_one_input)
        atheris.Fuzz()
    finally:
        if os.environ.get("STREAMLENS_KEEP_ATHERIS_DIR") is None:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
