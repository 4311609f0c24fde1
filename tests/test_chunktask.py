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
from streamlens_dist.partial import Prefix, advance, before, combine_all
from streamlens_dist.results import build_tables, thresholds
from streamlens_dist.settings import Settings
from streamlens_dist.wire import before_to_bytes, partial_from_bytes, unpack

CAPTURE = CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap"


def _run(sigma: str) -> tuple[dict, list[bool]]:
    plan = plan_capture([CAPTURE], 256 * 1024)
    settings = Settings(sigma=sigma)
    parts = [analyze_chunk(c, settings) for c in plan.chunks]
    merged = combine_all([partial_from_bytes(p) for p in parts])
    thr = thresholds_to_bytes(*thresholds(merged, Fraction(sigma)))
    outs, prefix = [], Prefix()
    for c, p in zip(plan.chunks, parts, strict=True):
        outs.append(chunk_outliers(c, settings, p, thr, before_to_bytes(
            before(prefix, partial_from_bytes(p)))))
        prefix = advance(prefix, partial_from_bytes(p))
    tables = as_dict(build_tables(merged, Fraction(sigma), outs))
    return tables, [unpack(o, "outliers")["reread"] for o in outs]


@pytest.mark.parametrize("sigma", ["3", "0.5"])
def test_tops_and_reread_agree(monkeypatch: pytest.MonkeyPatch, sigma: str) -> None:
    kept, kept_reread = _run(sigma)
    # keep nothing: every chunk with a candidate scope must be re-read
    monkeypatch.setattr(scopestats, "KEEP_ABOVE_STD", 1e30)
    monkeypatch.setattr(scopestats, "KEEP_ALL_UP_TO", 0)
    forced, forced_reread = _run(sigma)
    assert_tables_equal(kept, forced)
    assert sum(forced_reread) > sum(kept_reread)
    assert len(kept["flow_outliers"]["frame"]) > 0


def test_many_outliers_force_a_reread() -> None:
    _tables, reread = _run("0.1")
    assert any(reread)


@pytest.mark.parametrize("capture", ["generated", "mixed_many_protocols_vlan_ipv6.pcap"])
def test_before_of_each_chunk_travels_and_matches_its_partial(tmp_path, capture: str) -> None:
    """A chunk's Before (the last timestamps of its scopes before it: what its outlier pass
    needs of the chunks before) survives the wire; the seams it gives are those of the keyed
    prefix; a Before of another chunk's partial, or a cut message, is a WireFormatError."""
    from streamlens_dist.errors import WireFormatError
    from streamlens_dist.partial import seam_iats, table_seams
    from streamlens_dist.reduction import Reducer
    from streamlens_dist.synth import flight_test_capture
    from streamlens_dist.wire import before_from_bytes

    path = CAPTURES / capture
    if capture == "generated":  # CH10, PTP, IENA, iNET-X streams
        path = tmp_path / "ft.pcap"
        flight_test_capture(path, 6000, seed=3)
    plan = plan_capture([path], path.stat().st_size // 4 + 1)
    parts = [partial_from_bytes(analyze_chunk(c, Settings())) for c in plan.chunks]
    assert len(parts) >= 3
    reducer, prefix, streams = Reducer(), Prefix(), 0
    for p in parts:
        reducer.add(p)
        got = before_from_bytes(reducer.before[-1])
        flows, types, stream_seams = seam_iats(prefix, p)
        for (last, has), t, want in (((got.flows, got.flows_has), p.flow_table(), flows),
                                     ((got.types, got.types_has), p.type_table(), types)):
            rows, iat = table_seams(last, has)
            assert [(t.key_list[r], x) for r, x in zip(rows.tolist(), iat.tolist(),
                                                        strict=True)] == \
                [(k, x) for k, _f, _t, x in want]
        assert got.streams == {k: prefix.streams[k] for k in p.streams if k in prefix.streams}
        streams += len(stream_seams)
        prefix = advance(prefix, p)
    assert streams or capture != "generated"  # protocol streams are carried too
    assert dict(reducer.merged().flows) == dict(combine_all(parts).flows)
    settings = Settings()
    with pytest.raises(WireFormatError, match="does not match"):
        chunk_outliers(plan.chunks[1], settings, parts[1],
                       thresholds_to_bytes(*thresholds(combine_all(parts), Fraction(3))),
                       before_to_bytes(before(Prefix(), parts[0])) if
                       len(parts[0].flows) != len(parts[1].flows) else b"junk")
    with pytest.raises(WireFormatError):
        before_from_bytes(reducer.before[1][:len(reducer.before[1]) // 2])
    for junk in (b"\x93\x01\x02\x03", b"\x81\x91\x01\x02", b"not msgpack \xc1"):
        with pytest.raises(WireFormatError):
            before_from_bytes(junk)
