"""The CLI as a user meets it: help, summary, JSON equal to the API, errors without
tracebacks, exit statuses, and stores that are never overwritten by accident."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CAPTURES, strict_json
from storeio import load_store

import streamlens_dist

CLI = str(Path(sys.executable).parent / "streamlens-dist")
PTP = CAPTURES / "ptpv2_l2_ethertype88f7.pcap"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_options() -> None:
    r = run("analyze", "--help")
    assert r.returncode == 0
    for opt in ("--sigma", "--chunk-size", "--workers", "--scheduler", "--overwrite", "--json"):
        assert opt in r.stdout


def test_summary_and_json_equal_api(tmp_path: Path) -> None:
    r = run("analyze", str(PTP), "-o", str(tmp_path / "a.zarr"), "--serial",
            "--chunk-size", "4KiB")
    assert r.returncode == 0, r.stderr
    assert "205 frames" in r.stdout and "2 flows" in r.stdout
    r = run("analyze", str(PTP), "-o", str(tmp_path / "b.zarr"), "--serial", "--json")
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    api = streamlens_dist.analyze(PTP, tmp_path / "c.zarr", serial=True).to_dict()
    for key in ("flows", "outliers", "top_flows"):
        assert cli[key] == api[key]
    assert {k: v for k, v in cli["attrs"].items() if k != "files"} == \
        {k: v for k, v in api["attrs"].items() if k != "files"}


def test_json_is_strict_json_with_null_for_undefined_means(tmp_path: Path) -> None:
    """One-frame flows have no IAT mean: `null` in every JSON output, never `NaN`."""
    cap = CAPTURES / "vlan_double_8100_icmp_cdp.pcap"
    r = run("analyze", str(cap), "-o", str(tmp_path / "s.zarr"), "--serial", "--json")
    assert r.returncode in (0, 3), r.stderr
    summary = strict_json(r.stdout)
    means = [f["iat_mean_ns"] for f in summary["top_flows"]]
    assert None in means and any(isinstance(m, float) for m in means), means
    r = run("report", str(tmp_path / "s.zarr"), "--json")
    assert r.returncode == 0 and strict_json(r.stdout)["top_flows"] == summary["top_flows"]


def _in_terminal(columns: int, *args: str) -> str:
    """What a command prints in a terminal `columns` wide (a pseudo-terminal), colours off."""
    import fcntl
    import os
    import pty
    import re
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, its output on the terminal
        os.environ.pop("COLUMNS", None)
        os.execv(CLI, [CLI, *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    out = b""
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.waitpid(pid, 0)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode())


def test_tables_never_split_or_cut_a_flow_or_a_number(tmp_path: Path) -> None:
    """Piped: nothing wrapped. In a terminal: its width when the values fit, else wider;
    never an address split over lines or a value cut to "…"."""
    store = tmp_path / "v6.zarr"
    streamlens_dist.analyze(CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap", store,
                            serial=True)
    t = streamlens_dist.open_results(store).tables
    flows = [f"{src} > {dst}" for src, dst in zip(t.flows["src"], t.flows["dst"], strict=True)]
    assert max(map(len, flows)) > 36  # MAC pairs and IPv6 addresses among them
    top = str(len(flows))
    piped = run("report", str(store), "--top", top)
    assert piped.returncode == 0, piped.stderr
    outputs = {"piped": piped.stdout}
    for columns in (60, 100, 200):
        outputs[columns] = _in_terminal(columns, "report", str(store), "--top", top)
    for where, text in outputs.items():
        assert "…" not in text, where
        lines = text.splitlines()
        for flow in flows:
            assert any(flow in line for line in lines), (where, flow)
    widths = [len(x) for x in outputs[200].splitlines()]
    assert max(widths) <= 200


def test_existing_store_needs_overwrite(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    assert run("analyze", str(PTP), "-o", str(store), "--serial").returncode == 0
    before = sorted(str(p.relative_to(store)) for p in store.rglob("zarr.json"))
    r = run("analyze", str(PTP), "-o", str(store), "--serial", "--sigma", "1")
    assert r.returncode == 1
    assert "already exists" in r.stderr and "--overwrite" in r.stderr
    assert load_store(store)[1]["sigma"] == "3"
    r = run("analyze", str(PTP), "-o", str(store), "--serial", "--sigma", "1", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert load_store(store)[1]["sigma"] == "1"
    assert sorted(str(p.relative_to(store)) for p in store.rglob("zarr.json")) == before
    assert not list(tmp_path.glob(".*incomplete*"))


@pytest.mark.parametrize("args, message", [
    (["missing.pcap"], "capture file not found"),
    (["nomatch-*.pcap"], "no capture file matches"),
    ([str(CAPTURES / "PROVENANCE.md")], "not a pcap or pcapng capture"),
    ([str(CAPTURES / "corrupt_pcap_unsupported_version_1_4.pcap")], "version 1.4"),
    ([str(CAPTURES)], "is a directory"),
])
def test_bad_inputs_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    r = run("analyze", *args, "-o", str(tmp_path / "x.zarr"), "--serial")
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("args, message", [
    (["--chunk-size", "12XB"], "invalid size"),
    (["--chunk-size", "10"], "below the minimum"),
    (["--sigma", "-1"], "invalid sigma"),
    (["--sigma", "abc"], "invalid sigma"),
    (["--workers", "0"], "--workers"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    r = run("analyze", str(PTP), "-o", str(tmp_path / "x.zarr"), "--serial", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_chunk_size_units(tmp_path: Path) -> None:
    for size in ("2048", "2KiB", "1MiB"):
        r = run("analyze", str(PTP), "-o", str(tmp_path / f"{size}.zarr"), "--serial", "--json",
                "--chunk-size", size)
        assert r.returncode == 0, r.stderr
    chunks = [json.loads(run("analyze", str(PTP), "-o", str(tmp_path / f"j{s}.zarr"), "--serial",
                             "--json", "--chunk-size", s).stdout)["chunks"] for s in ("2KiB", "1MiB")]
    assert chunks[0] > 1 and chunks[1] == 1


def test_damaged_capture_completes_with_data_problem_status(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = PTP.read_bytes()
    cut.write_bytes(data[:-10])  # the last record cut off, as by a recorder losing power
    r = run("analyze", str(cut), "-o", str(tmp_path / "d.zarr"), "--serial")
    assert r.returncode == 3, r.stderr
    assert "problem truncated" in r.stdout and "cut.pcap" in r.stdout
    attrs = load_store(tmp_path / "d.zarr")[1]
    assert attrs["complete"] is True and attrs["frames"] == 204
    (problem,) = attrs["problems"]
    assert problem["kind"] == "truncated" and problem["offset"] == len(data) - 16 - 60


def test_nothing_to_analyse_fails_alike_for_every_zero_frame_file(tmp_path: Path) -> None:
    """A file that is not a capture, a capture whose first record is already damaged and a
    valid capture without packets: exit 1, one error line naming the file, nothing written."""
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(PTP.read_bytes()[:24])  # the file header alone
    for name in ("corrupt_pcap_unsupported_version_1_4.pcap",
                 "corrupt_pcapng_shb_option_too_long.pcapng",
                 "corrupt_truncated_nsec_fuzz.pcap", empty):
        cap = name if isinstance(name, Path) else CAPTURES / name
        out = tmp_path / "out.zarr"
        r = run("analyze", str(cap), "-o", str(out), "--serial")
        assert r.returncode == 1, (cap, r.stdout, r.stderr)
        lines = r.stderr.splitlines()  # the split's progress bar, then the error: no blank
        assert lines[-1].startswith("error: ") and cap.name in lines[-1] and r.stdout == ""
        assert all(x.strip() and not x.startswith("error") for x in lines[:-1]), lines
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.pcap"]


def test_cluster_run_prints_dashboard_and_phase_times(tmp_path) -> None:
    from streamlens_dist.synth import flight_test_capture

    cap = tmp_path / "ft.pcap"
    flight_test_capture(cap, 3000, seed=2)
    r = run("analyze", str(cap), "-o", str(tmp_path / "o.zarr"), "--chunk-size", "64KiB",
            "--workers", "1", "--profile")
    assert r.returncode == 0, r.stderr
    assert "Dask dashboard: http://127.0.0.1:" in r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("time per phase:"))
    for phase in ("split", "cluster_start", "dissect", "merge", "outliers", "write",
                  "cluster_stop"):
        assert f"{phase} " in line
    # --profile: the phases, each chunk-task step summed over the workers, the client's CPU
    assert "Profile: 3,000 frames" in r.stdout
    for step in ("walk", "classify", "messages", "stats", "outlier_pass"):
        assert f"worker {step}" in r.stdout
    cpu = next(x for x in r.stdout.splitlines() if x.startswith("CPU of this process"))
    assert float(cpu.split(":")[1].split()[0]) > 0



def test_local_cluster_dashboard_link_serves_the_dashboard() -> None:
    """The link the CLI prints is a working page (bokeh is a dependency), not a 404."""
    import urllib.request

    from streamlens_dist.engine import cluster_client

    with cluster_client(None, 1) as client:
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(link, timeout=30) as page:
            assert page.status == 200 and b"Dask" in page.read()


def test_analyze_imports_neither_zarr_nor_distributed_for_a_small_capture(tmp_path) -> None:
    """A one-chunk capture runs in-process; the store is written as plain files. Importing
    zarr (only needed to read a store) or distributed would be most of such a run's time."""
    code = ("import sys; from streamlens_dist.cli import main; sys.argv = ['streamlens-dist', "
            f"'analyze', {str(PTP)!r}, '-o', {str(tmp_path / 's.zarr')!r}, '-q']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('zarr', 'distributed') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert load_store(tmp_path / "s.zarr")[1]["complete"] is True
