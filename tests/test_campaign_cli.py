"""What the campaign commands print and return: pending captures listed right after `add`,
exit statuses, readable tables, flows ranked only with enough IATs, no progress bar when
there is nothing to do, and JSON that strict parsers accept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_campaign_paths import CLI, IDS, PATTERN, cli, make_archive

from streamlens_dist import open_results

pytestmark = pytest.mark.timeout(300)


def strict_json(text: str) -> object:
    """JSON.parse's rules: NaN and Infinity are not JSON."""
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def added(d: Path) -> Path:
    """A campaign of two flights and a file that is not a capture, added but not yet run."""
    make_archive(d / "archive")
    (d / "junk").mkdir()
    (d / "junk" / "junk.pcap").write_bytes(b"not a capture\n" * 64)
    (d / "junk.csv").write_text("capture_id,files,tail\njunk,junk/junk.pcap,T9\n")
    assert cli(d, "init", "fleet.zarr").returncode == 0
    assert cli(d, "discover", "archive", "--pattern", PATTERN, "-o", "m.csv").returncode == 0
    for m in ("m.csv", "junk.csv"):
        assert cli(d, "add", "fleet.zarr", m).returncode == 0
    return d / "fleet.zarr"


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    store = added(tmp_path_factory.mktemp("cli"))
    return store, cli(store.parent, "run", str(store), "--serial")


def test_status_lists_pending_captures_after_add(tmp_path) -> None:
    store = added(tmp_path)
    r = cli(store.parent, "status", str(store))
    assert r.returncode == 0 and r.stdout.rstrip().endswith("3 pending"), r.stdout
    assert all(c in r.stdout for c in IDS)
    rows = strict_json(cli(store.parent, "status", str(store), "--json").stdout)
    assert sorted((x["capture_id"], x["status"]) for x in rows) == sorted(
        (c, "pending") for c in [*IDS, "junk"])
    index = open_results(store).table("capture_index")
    assert sorted(index["capture_id"]) == sorted([*IDS, "junk"])
    assert set(index["status"]) == {"pending"}


def test_run_status_report(ran) -> None:
    """run exits 3 when a capture failed in it; status and report read the store: 0. A rerun
    with nothing to do prints the plan and the result, no progress bar."""
    store, r = ran
    assert r.returncode == 3 and "failed: junk: " in r.stdout, r.stdout + r.stderr
    r = cli(store.parent, "run", str(store), "--serial")
    assert r.returncode == 0 and "0 analysed, 0 failed, 0 files missing, 3 unchanged" in r.stdout
    assert r.stderr.splitlines() == ["0 captures to analyse, 3 unchanged"]

    st = cli(store.parent, "status", str(store))
    assert st.returncode == 0, st.stderr
    assert st.stdout.rstrip().endswith("1 failed, 2 ok") and "1,500" in st.stdout
    rep = cli(store.parent, "report", str(store), "--min-iats", "1")
    assert rep.returncode == 0, rep.stderr
    assert "Fleet: flows with >= 1 IATs, by outlier rate" in rep.stdout
    assert "mean IAT ms" in rep.stdout and "std IAT ms" in rep.stdout
    assert "e+0" not in rep.stdout and "%" in rep.stdout
    # the 1,000-IAT default: these 1,500-frame flights have no flow that long, and say so
    rep = cli(store.parent, "report", str(store))
    assert rep.returncode == 0 and "with fewer than 1,000 IATs not ranked" in rep.stdout


def test_ranking_needs_enough_iats(ran) -> None:
    store, _ = ran
    res = open_results(store)
    fleet = res.table("fleet_flows")
    everything = res.summary(top=len(fleet), min_iats=0)
    assert everything["fleet_flows"][0]["iat_count"] < 100  # a thin flow tops the list
    summary = res.summary(top=len(fleet), min_iats=100)
    ranked = summary["fleet_flows"]
    assert ranked and all(r["iat_count"] >= 100 for r in ranked)
    assert [r["outlier_rate"] for r in ranked] == sorted((r["outlier_rate"] for r in ranked),
                                                         reverse=True)
    assert summary["below_min_iats"]["fleet_flows"] == int((fleet["iat_count"] < 100).sum())
    assert len(ranked) + summary["below_min_iats"]["fleet_flows"] == len(fleet)
    out = cli(store.parent, "report", str(store), "--json", "--min-iats", "100", "--top",
              str(len(fleet)))
    assert strict_json(out.stdout) == json.loads(json.dumps(summary))


def test_json_is_strict(ran) -> None:
    """Flows without IATs (NaN mean and rate) come out as null."""
    store, _ = ran
    for args in (("status", str(store), "--json"),
                 ("report", str(store), "--json", "--min-iats", "0", "--top", "1000"),
                 ("report", str(store), "--json", "--top", "1000")):
        r = cli(store.parent, *args)
        assert r.returncode == 0, r.stderr
        strict_json(r.stdout)
    rows = strict_json(cli(store.parent, "report", str(store), "--json", "--min-iats", "0",
                           "--top", "1000").stdout)["fleet_flows"]
    assert any(r["iat_mean_ns"] is None for r in rows)
    json.dumps(open_results(store).summary(1000, min_iats=0), allow_nan=False)
    # `report STORE` on a campaign store is `campaign report`, --min-iats included
    top_level = subprocess.run([CLI, "report", str(store), "--json", "--min-iats", "0",
                                "--top", "1000"], capture_output=True, text=True, timeout=120)
    assert top_level.returncode == 0 and strict_json(top_level.stdout)["fleet_flows"] == rows
