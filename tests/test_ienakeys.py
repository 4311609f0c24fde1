"""The IENA key map (docs/STREAMS.md §6): file formats, clear errors, and its effect on frame
types and on the streams table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CAPTURES
from storeio import load_store

import streamlens_dist
from streamlens_dist.errors import SettingsError
from streamlens_dist.ienakeys import load_key_map

# key 0x001A; the first frame's key status (0x01: one word per parameter) makes it IENA-N,
# the other 50 have key status 0, which says nothing: IENA-Unknown
IENA_N = CAPTURES / "iena_n_key001a_10hz.pcap"


def test_csv_and_yaml(tmp_path) -> None:
    csv = tmp_path / "keys.csv"
    csv.write_text("Key,Type,Name\n0x001a,N,ENGINE_1\n300,iena-d,\n")
    assert load_key_map(csv) == ((26, "N", "ENGINE_1"), (300, "D", ""))
    yml = tmp_path / "keys.yaml"
    yml.write_text("0x001a: {type: N, name: ENGINE_1}\n300: D\n")
    assert load_key_map(yml) == ((26, "N", "ENGINE_1"), (300, "D", ""))


@pytest.mark.parametrize("text, message", [
    ("key,kind\n1,N\n", "header row"),
    ("key,type\nzz,N\n", "not a number"),
    ("key,type\n70000,N\n", "outside"),
    ("key,type\n1,X\n", "packet type"),
    ("key,type\n1,N\n1,D\n", "twice"),
    ("key,type\n", "no keys"),
])
def test_bad_maps_are_clear_errors(tmp_path, text, message) -> None:
    f = tmp_path / "k.csv"
    f.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_key_map(f)


def test_map_sets_frame_type_and_stream_columns(tmp_path) -> None:
    plain = tmp_path / "plain.zarr"
    streamlens_dist.analyze(IENA_N, plain, serial=True)
    t, _ = load_store(plain)
    assert list(t["frame_types"]["frame_type"]) == ["IENA-N", "IENA-Unknown"]
    assert list(t["frame_types"]["frames"]) == [1, 50]
    assert (list(t["streams"]["iena_type"]), list(t["streams"]["iena_type_source"])) == \
        (["N,Unknown"], ["flags"])
    # key status 0x01 then 0x00 (N2 status 0x01 then 0x00): one change
    assert (int(t["streams"]["status_changes"][0]), int(t["streams"]["status_first"][0]),
            int(t["streams"]["status_last"][0])) == (1, 0x0101, 0)
    keys = tmp_path / "keys.csv"
    keys.write_text("key,type,name\n0x1a,N,ENGINE_1\n")
    mapped = tmp_path / "mapped.zarr"
    for chunk in ("1KiB", "64MiB"):
        streamlens_dist.analyze(IENA_N, mapped, serial=True, overwrite=True, chunk_size=chunk,
                                iena_keys=keys)
        t, attrs = load_store(mapped)
        assert list(t["frame_types"]["frame_type"]) == ["IENA-N"]
        assert int(t["frame_types"]["frames"][0]) == 51
        assert list(t["streams"]["iena_type"]) == ["N"]
        assert list(t["streams"]["iena_type_source"]) == ["map"]
        assert list(t["streams"]["stream"]) == ["key 0x001a ENGINE_1"]
        assert attrs["iena_keys"] == [[26, "N", "ENGINE_1"]]


def test_cli_option(tmp_path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("26: N\n")
    out = tmp_path / "o.zarr"
    r = _cli("analyze", str(IENA_N), "-o", str(out), "--serial", "-q", "--iena-keys", str(keys))
    assert r.returncode == 0, r.stderr
    t, _ = load_store(out)
    assert list(t["frame_types"]["frame_type"]) == ["IENA-N"]
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n")
    r = _cli("analyze", str(IENA_N), "-o", str(tmp_path / "x.zarr"), "--iena-keys", str(bad))
    assert r.returncode == 2 and "`key` and `type`" in r.stderr, r.stderr
    assert not (tmp_path / "x.zarr").exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    cli = str(Path(sys.executable).parent / "streamlens-dist")
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
