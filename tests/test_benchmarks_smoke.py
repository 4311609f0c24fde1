"""Every benchmark runs untimed on tiny inputs so that none can rot; nothing here is timed.

Timing is on demand only (benchmarks/README.md). These tests check that each benchmark runs
end to end and that every tool saw the same capture, never how fast anything was.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import campaign  # noqa: E402
import generate  # noqa: E402
import memory  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
from common import Workload, parse_size  # noqa: E402

FRAMES = 3000


def quiet(_: str) -> None:
    pass


def test_generator_cli_pcapng_and_a_given_capture(tmp_path: Path) -> None:
    out = tmp_path / "fleet.pcapng"
    generate.main([str(out), "--frames", "2000", "--flows", "80", "--seed", "3", "--pcapng"])
    truth = generate.Truth.load(generate.truth_path(out))
    assert truth.frames == 2000 and truth.flows_expected == 80
    assert len(truth.fleet) == 80 - generate.BASE_FLOWS
    assert truth.first_ns <= truth.last_ns
    assert all(g["frame"] > g["prev_frame"] for g in truth.gaps)
    # --capture: an existing (pcapng) file, the dpkt baseline and the engine in process
    rep = run.run(Workload(capture=str(out), baselines=("dpkt",), workers=(),
                           chunk_sizes=("32KiB",)), out=quiet, log=quiet)
    assert not rep.errors, rep.errors
    assert [r.tool for r in rep.rows] == ["dpkt", "serial"]
    assert all(r.m.result["frames"] == 2000 for r in rep.rows)


def test_every_benchmark_via_the_report(tmp_path: Path) -> None:
    tiny = Workload(frames=FRAMES, flows=100, workers=(1,), chunk_sizes=("64KiB", "256KiB"),
                    cache_dir=str(tmp_path))
    plan = report.Plan(
        matrix=tiny, headline=None,
        chunk_memory=Workload(frames=FRAMES, flows=100, chunk_sizes=("64KiB",), cache_dir=str(tmp_path)),
        reducers=(memory.ReducerWorkload(flows=100, chunks=20),
                  memory.ReducerWorkload(flows=100, chunks=20, types_per_flow=0,
                                         inputs=("streamed", "materialized"))),
        campaigns=campaign.CampaignWorkload(layouts=((3, 300), (1, 900)), serial=True),
    )
    built = report.build(plan, log=quiet)
    assert not built.errors, built.errors
    assert "### Campaigns" in built.text and "| 3 x 300 | 900 |" in built.text
    m = built.matrix
    tools = [r.tool for r in m.rows]
    assert tools[0] == "dpkt" and tools.count("serial") == 2 and tools.count("cluster") == 2
    assert m.frames == FRAMES and all(r.m.result["frames"] == FRAMES for r in m.rows)
    assert all(r.m.peak_rss > 0 for r in m.rows)
    # cluster runs go in rounds; the scaling table pairs them round by round
    assert all(len(r.m.work) == tiny.repeat for r in m.rows if r.tool == "cluster")
    assert "x 1 worker, median of rounds" in built.text and "client CPU s" in built.text
    # one worker process's rate: frames over the serial run's chunk-task seconds
    assert "One worker process" in built.text
    for r in m.rows:
        if r.tool == "serial":
            ph = r.m.result["phases"]
            assert run.task_seconds(r) == ph["dissect"] + ph["outliers"] > 0
            assert ph["client_cpu"] > 0
    # the engine's numbers do not depend on chunk size or worker count
    engine = [r.m.result for r in m.rows if r.tool in ("serial", "cluster")]
    assert len({(e["flows"], e["outliers"], e["gaps_found"]) for e in engine}) == 1
    assert set(m.rates()) and "### Throughput" in built.text and "x dpkt" in built.text
    assert {r["mode"] for r in built.chunk_memory.results} == {"serial", "worker"}
    reds = [x for r in built.reducer for x in r.results]
    assert [x["inputs"] for x in reds] == ["streamed", "streamed", "materialized"]
    assert all(x["flows"] == 100 and x["chunks"] == 20 and x["stats_ok"] for x in reds)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\nrest\n")
    report.update_readme("new", readme)
    assert readme.read_text() == f"intro\n{report.BEGIN}\nnew\n{report.END}\nrest\n"


def test_parse_size() -> None:
    assert parse_size("64MiB") == 64 << 20 and parse_size("4KiB") == 4096
    assert parse_size("1GiB") == 1 << 30 and parse_size("1000") == 1000


def test_campaign_benchmark_runs(tmp_path: Path) -> None:
    """Both layouts analyse every frame once and the rerun finds nothing to do (the
    benchmark raises otherwise); nothing is timed here."""
    w = campaign.CampaignWorkload(layouts=((6, 300), (2, 900)), serial=True)
    results = campaign.run(w, tmp=tmp_path)
    assert [r.frames_seen for r in results] == [1800, 1800]
    assert all(r.fleet_flows > 0 for r in results)
    assert "| 6 x 300 |" in campaign.table(results, w)


def test_scale_benchmark_runs(tmp_path: Path) -> None:
    """The scale benchmark's captures hold the flows and frames asked for in every shape (the
    engine finds them), and both tables run; nothing is timed here."""
    import scale

    rows = scale.flows_table(2000, [20, 300], list(scale.SHAPES), "4KiB", 120.0, 4 << 30,
                             tmp_path, log=quiet)
    assert [(r[0], r[1]) for r in rows] == [(s, f) for s in scale.SHAPES for f in ("20", "300")]
    assert all(r[3].replace(",", "").isdigit() and int(r[2].replace(",", "")) > 1 for r in rows)
    assert all(r[4] == "1.00" for r in rows[::2])  # each shape's 20-flow run is its base
    rows = scale.shapes_table(2000, 20, list(scale.LINK_SHAPES), "4KiB", 1, tmp_path, log=quiet)
    assert [r[0] for r in rows] == ["poisson", *scale.LINK_SHAPES]
    assert all(r[4] == "0" for r in rows)  # every frame of every link shape on the fast path
    rows = scale.reread_table(2000, [20], ["poisson"], "4KiB", tmp_path, log=quiet)
    assert rows[0][:2] == ["poisson", "20"] and float(rows[0][4]) > 0
    rows = scale.chunks_table(2000, 20, ["16KiB", "64KiB"], 1, tmp_path, log=quiet)
    assert [int(r[1]) for r in rows] == sorted((int(r[1]) for r in rows), reverse=True)
    assert all(float(r[4]) > 0 for r in rows)
