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


@pytest.mark.parametrize("capture", ["generated", "mixed_many_protocols_vlan_ipv6.pcap"])
def test_prefix_tasks_read_only_the_scopes_of_a_partial(tmp_path, capture: str) -> None:
    """partial_scopes_from_bytes (what the prefix tasks decode) gives a partial's flows,
    frame types and streams exactly as partial_from_bytes, for chunks and their combines;
    a cut message is a WireFormatError."""
    from streamlens_dist.engine import combine_task, prefix_task
    from streamlens_dist.errors import WireFormatError
    from streamlens_dist.synth import flight_test_capture
    from streamlens_dist.wire import partial_scopes_from_bytes, prefix_from_bytes

    path = CAPTURES / capture
    if capture == "generated":  # CH10, PTP, IENA, iNET-X streams
        path = tmp_path / "ft.pcap"
        flight_test_capture(path, 6000, seed=3)
    plan = plan_capture([path], path.stat().st_size // 4 + 1)
    parts = [analyze_chunk(c, Settings()) for c in plan.chunks]
    assert len(parts) >= 3
    parts.append(combine_task(combine_task(parts[0], parts[1]), parts[2]))
    streams = 0
    for data in parts:
        full, scopes = partial_from_bytes(data), partial_scopes_from_bytes(data)
        assert (scopes.flows, scopes.types, scopes.streams) == \
            (full.flows, full.types, full.streams)
        streams += len(full.streams)
        before = advance(Prefix(), partial_from_bytes(parts[0]))
        got = prefix_from_bytes(prefix_task(prefix_to_bytes(before), data))
        assert got == advance(before, full)
    assert streams or capture != "generated"  # protocol streams are read too, not only flows
    with pytest.raises(WireFormatError):
        partial_scopes_from_bytes(parts[0][:len(parts[0]) // 50])
    with pytest.raises(WireFormatError, match="not a streamlens-dist partial"):
        partial_scopes_from_bytes(prefix_to_bytes(Prefix()))
    for junk in (b"\x93\x01\x02\x03", b"\x81\x91\x01\x02", b"not msgpack \xc1"):
        with pytest.raises(WireFormatError):
            partial_scopes_from_bytes(junk)
