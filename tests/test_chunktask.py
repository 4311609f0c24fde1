"""Pass 2 answers from the kept top IATs when it can and re-reads the chunk when it must;
both ways give the same outlier rows."""

from __future__ import annotations

from fractions import Fraction

import pytest
from chunking import as_dict
from conftest import CAPTURES, assert_tables_equal

from streamlens_dist import scopestats
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import analyze_chunk, chunk_outliers, thresholds_to_bytes
from streamlens_dist.partial import Prefix, advance, combine_all
from streamlens_dist.results import build_tables, thresholds
from streamlens_dist.settings import Settings
from streamlens_dist.wire import partial_from_bytes, prefix_to_bytes, unpack

CAPTURE = CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap"


def _run(sigma: str) -> tuple[dict, list[bool]]:
    plan = plan_capture([CAPTURE], 256 * 1024)
    settings = Settings(sigma=sigma)
    parts = [analyze_chunk(c, settings) for c in plan.chunks]
    merged = combine_all([partial_from_bytes(p) for p in parts])
    thr = thresholds_to_bytes(*thresholds(merged, Fraction(sigma)))
    outs, prefix = [], Prefix()
    for c, p in zip(plan.chunks, parts, strict=True):
        outs.append(chunk_outliers(c, settings, p, thr, prefix_to_bytes(prefix)))
        prefix = advance(prefix, partial_from_bytes(p))
    tables = as_dict(build_tables(merged, Fraction(sigma), outs))
    return tables, [unpack(o, "outliers")["reread"] for o in outs]


@pytest.mark.parametrize("sigma", ["3", "0.5"])
def test_tops_and_reread_agree(monkeypatch: pytest.MonkeyPatch, sigma: str) -> None:
    kept, kept_reread = _run(sigma)
    # keep nothing: every chunk with a candidate scope must be re-read
    monkeypatch.setattr(scopestats, "KEEP_ABOVE_STD", 1e30)
    forced, forced_reread = _run(sigma)
    assert_tables_equal(kept, forced)
    assert sum(forced_reread) > sum(kept_reread)
    assert len(kept["flow_outliers"]["frame"]) > 0


def test_many_outliers_force_a_reread() -> None:
    _tables, reread = _run("0.1")
    assert any(reread)
