"""The store's hand-written Zarr v3 files equal what zarr-python writes for the same arrays
(metadata and decoded values), and zarr reads every column back exactly, including text,
booleans, NaN, empty tables and arrays spanning several chunks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from streamlens_dist import store
from streamlens_dist.store import STRING, local_put, write_array


def _values(dtype: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    if dtype == STRING:
        words = ["", "ip4", "192.168.28.10", "fe80::1", "é ü ∆ 🛩", "x" * 300]
        return np.array([words[i % len(words)] + str(i % 7) * (i % 3) for i in range(n)],
                        dtype=np.dtypes.StringDType())
    if dtype == "bool":
        return rng.integers(0, 2, n).astype(bool)
    if dtype == "float64":
        v = rng.normal(size=n) * 1e9
        v[::5] = np.nan
        v[1::7] = np.inf
        return v
    return rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)


@pytest.mark.parametrize("dtype", ["int64", "float64", "bool", STRING])
@pytest.mark.parametrize("n", [0, 1, 5, 11])
def test_files_match_zarr(tmp_path, monkeypatch, dtype, n) -> None:
    monkeypatch.setattr(store, "ROWS_PER_CHUNK", 4)  # several chunks, the last one padded
    values = _values(dtype, n)
    ours = tmp_path / "ours"
    ours.mkdir()
    write_array(local_put(str(ours)), "t/col", dtype, values)
    theirs = zarr.create_array(str(tmp_path / "theirs"), shape=(n,), zarr_format=3,
                               dtype=str if dtype == STRING else dtype,
                               chunks=(max(1, min(n, 4)),),
                               chunk_key_encoding={"name": "v2", "separator": "."})
    if n:
        theirs[:] = values
    a = json.loads((ours / "t" / "col" / "zarr.json").read_text())
    b = json.loads((tmp_path / "theirs" / "zarr.json").read_text())
    if dtype == "float64":  # zarr may spell the fill value 0.0 or 0
        assert float(a.pop("fill_value")) == float(b.pop("fill_value")) == 0.0
    assert a == b
    back = zarr.open_array(str(ours / "t" / "col"), mode="r")[:]
    assert len(back) == n
    if dtype == STRING:
        assert [str(x) for x in back] == [str(x) for x in values]
    else:
        assert np.array_equal(back, values, equal_nan=dtype == "float64")
    chunk_files = sorted(p.name for p in (ours / "t" / "col").iterdir() if p.name != "zarr.json")
    # the keys zarr writes (it skips chunks that are all fill value; we write every one)
    assert {p.name for p in (tmp_path / "theirs").iterdir()} - {"zarr.json"} <= set(chunk_files)
    assert chunk_files == [str(i) for i in range(-(-n // 4))]


def test_atomic_write_gives_the_usual_file_mode(tmp_path) -> None:
    """Reports, checkpoint entries and campaign records are readable like any file the user
    writes (mkstemp alone would leave them 0600)."""
    import os
    import stat

    from streamlens_dist.store import _umask, atomic_write

    target = tmp_path / "report.html"
    atomic_write(str(target), b"x")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~_umask()
    mask = os.umask(0o022)
    os.umask(mask)
    assert _umask() == mask


def _empty_tables() -> dict:
    return {t: {c: np.zeros(0, dtype=object if d == STRING else d) for c, d in cols.items()}
            for t, cols in store.LAYOUT.items()}


def test_writer_writes_columns_given_in_any_order(tmp_path) -> None:
    """Columns arrive in two waves (the run's tables, then its outlier columns); the store is
    the same as one written at once, and nothing is visible before `finish`."""
    tables = _empty_tables()
    tables["flows"] = {c: _values(d, 3) for c, d in store.LAYOUT["flows"].items()}
    target = tmp_path / "s.zarr"
    with store.StoreWriter(str(target), False) as w:
        for t, cols in tables.items():
            w.columns(t, {c: v for c, v in cols.items() if c != "outliers"})
        assert not target.exists()
        w.columns("flows", {"outliers": tables["flows"]["outliers"]})
        w.columns("frame_types", {"outliers": tables["frame_types"]["outliers"]})
        w.columns("streams", {"outliers": tables["streams"]["outliers"]})
        w.finish({"frames": 3})
    g = store.open_store(str(target))
    assert g.attrs["complete"] is True and g.attrs["frames"] == 3
    back = store.read_table(g, "flows")
    for c, v in tables["flows"].items():
        if store.LAYOUT["flows"][c] == STRING:
            assert [str(x) for x in back[c]] == [str(x) for x in v]
        else:
            assert np.array_equal(back[c], v, equal_nan=True)
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no temporary left


def test_writer_refuses_a_wrong_layout_and_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "s.zarr"
    with (pytest.raises(AssertionError, match="not in the layout"),
          store.StoreWriter(str(target), False) as w):
        w.columns("flows", {"nope": np.zeros(1)})
    with (pytest.raises(AssertionError, match="given twice"),
          store.StoreWriter(str(target), False) as w):
        w.columns("flows", {"src": _values(STRING, 1)})
        w.columns("flows", {"src": _values(STRING, 1)})
    with (pytest.raises(AssertionError, match="table flows does not match"),
          store.StoreWriter(str(target), False) as w):
        for t, cols in _empty_tables().items():
            w.columns(t, {c: v for c, v in cols.items() if (t, c) != ("flows", "bytes")})
        w.finish({})
    assert list(tmp_path.iterdir()) == []


def test_writer_error_in_the_background_reaches_finish(tmp_path) -> None:
    """A column that cannot be encoded fails in the writer's thread: finish raises it and the
    store is not written (an older one at the path is kept)."""
    target = tmp_path / "s.zarr"
    store.write_store(str(target), store.Tables(**_empty_tables()), {"frames": 1}, False)
    tables = _empty_tables()
    tables["flows"] = {c: _values(d, 1) for c, d in store.LAYOUT["flows"].items()}
    tables["flows"]["frames"] = np.array(["not a number"], dtype=object)
    with pytest.raises(ValueError), store.StoreWriter(str(target), True) as w:
        for t, cols in tables.items():
            w.columns(t, cols)
        w.finish({"frames": 2})
    assert store.open_store(str(target)).attrs["frames"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]
