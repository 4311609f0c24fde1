"""The campaign store: one Zarr v3 group holding every capture's results and the campaign
tables; the layout is declared here and nowhere else (STYLE §10).

    CAMPAIGN.zarr/             attrs: schema, sigma, chunk_size, captures, complete
      manifest/                attrs: captures (campaign/manifest.py rows, local paths
                               absolute), the source of truth
      captures/<capture_id>/   one capture's results, exactly the single-capture store layout
      records/<capture_id>/    attrs: the commit record of a capture: identity of its files,
                               status, run facts, its fleet summary (exact sums as text,
                               campaign/fleet.py) and `missing`, the files the last run found
                               missing
      capture_index/ fleet_flows/ fleet_frame_types/ fleet_flow_captures/
      fleet_frame_type_captures/ tail_flows/ tail_frame_types/      tables (columns below)

A capture is committed when its record is written (atomically, after its group is in place),
so a killed run loses at most the captures in flight. The tables are rebuilt from the records
at the end of every run and after every `add`, never from the captures themselves.

A capture's results are never deleted: a new analysis replaces them only when it succeeds.
What the index says of a capture, and whether it counts in the fleet tables:

- pending: not analysed yet, or redefined by `add --replace` since (not counted; results of
  the old definition, if any, are kept until the new one is analysed);
- ok / problems: analysed (counted);
- failed: its last analysis failed (not counted: the fleet tables describe the captures as
  they are now); results of an earlier successful analysis are kept, and the error says so;
- files-missing: some of its paths or globs name no file now; it is not analysed, keeps its
  results and, if it was ok / problems, still counts (its numbers are still true of the files
  they came from). When the files come back unchanged it is what it was before.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from ..errors import SettingsError, StoreExistsError
from ..store import GROUP, STRING, atomic_write, json_bytes, local_put, write_array
from .fleet import CAPTURE_STATS, FLEET_STATS, fleet_tables, record_from_attrs, record_to_attrs
from .manifest import CaptureEntry, absolute

SCHEMA = "streamlens-dist-campaign/1"
_FLEET = {c: ("float64" if c in ("iat_mean_ns", "iat_std_ns", "outlier_rate") else "int64")
          for c in FLEET_STATS}
_PER_CAPTURE = {c: ("float64" if c in ("iat_mean_ns", "iat_std_ns") else "int64")
                for c in CAPTURE_STATS}
LAYOUT: dict[str, dict[str, str]] = {
    # rows by (date, tail, flight, capture_id); tags and files as JSON text
    "capture_index": {"capture_id": STRING, "tail": STRING, "flight": STRING, "date": STRING,
                      "tags": STRING, "files": STRING, "status": STRING, "error": STRING,
                      "frames": "int64", "first_ns": "int64", "last_ns": "int64",
                      "flows": "int64", "outliers": "int64", "problems": "int64",
                      "software_version": STRING},
    "fleet_flows": {"src": STRING, "dst": STRING, "kind": STRING, **_FLEET},
    "fleet_frame_types": {"flow": "int64", "frame_type": STRING, **_FLEET},
    "fleet_flow_captures": {"flow": "int64", "capture": "int64", **_PER_CAPTURE},
    "fleet_frame_type_captures": {"frame_type_row": "int64", "capture": "int64", **_PER_CAPTURE},
    "tail_flows": {"tail": STRING, "src": STRING, "dst": STRING, "kind": STRING, **_FLEET},
    "tail_frame_types": {"tail_flow": "int64", "frame_type": STRING, **_FLEET},
}
DONE = ("ok", "problems")  # statuses whose captures enter the fleet tables


class CampaignKeyError(KeyError):
    """A capture id the campaign cannot answer for; prints its message as written (KeyError
    would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownCaptureError(CampaignKeyError):
    """No capture of that id in the campaign."""


class NoCaptureResultsError(CampaignKeyError):
    """The capture is in the campaign but has no results (pending, failed, files missing)."""


def own_record(e: CaptureEntry, record: dict | None) -> dict | None:
    """`record` if it is of `e`'s current definition (not of files `add --replace` swapped)."""
    return record if record is not None and record.get("files") == list(e.files) else None


def missing_text(record: dict) -> str:
    return "files missing: " + "; ".join(msg for _path, msg in record["missing"])


class Campaign:
    """A campaign store on a local or shared filesystem."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.fspath(root)
        try:
            with open(os.path.join(self.root, "zarr.json"), encoding="utf-8") as f:
                self.attrs = json.load(f)["attributes"]
        except (OSError, ValueError, KeyError) as exc:
            raise SettingsError(f"{self.root} is not a campaign store (create one with "
                                "`streamlens-dist campaign init`)") from exc
        if self.attrs.get("schema") != SCHEMA:
            raise SettingsError(f"{self.root} is not a campaign store (schema "
                                f"{self.attrs.get('schema')!r})")

    @classmethod
    def create(cls, root: str | os.PathLike, sigma: str, chunk_size: int) -> Campaign:
        root = os.fspath(root)
        if "://" in root:
            raise SettingsError("campaign stores live on a local or shared filesystem for now; "
                                "captures may still be URLs")
        if os.path.lexists(root):  # a dangling symlink too: never write through it
            raise StoreExistsError(f"{root} already exists")
        put = local_put(root)
        for group in ("captures", "records"):
            put(f"{group}/zarr.json", json_bytes(GROUP))
        put("manifest/zarr.json", json_bytes({**GROUP, "attributes": {"captures": []}}))
        attrs = {"schema": SCHEMA, "sigma": sigma, "chunk_size": chunk_size, "captures": 0,
                 "complete": True}
        put("zarr.json", json_bytes({**GROUP, "attributes": attrs}))
        camp = cls(root)
        camp.rebuild()
        return camp

    # --- manifest ---------------------------------------------------------------------------
    def manifest(self) -> list[CaptureEntry]:
        with open(os.path.join(self.root, "manifest", "zarr.json"), encoding="utf-8") as f:
            return [CaptureEntry.from_dict(d) for d in json.load(f)["attributes"]["captures"]]

    def add(self, entries: list[CaptureEntry], replace: bool = False) -> tuple[int, int]:
        """Add captures to the manifest (relative paths taken from the current directory) and
        rebuild the tables, so the new ones show as pending; returns (added, replaced). An id
        already present with another definition is an error unless `replace`."""
        current = {e.capture_id: e for e in self.manifest()}
        added = replaced = 0
        for e in absolute(entries, os.getcwd()):
            old = current.get(e.capture_id)
            if old is not None and old != e:
                if not replace:
                    raise SettingsError(f"capture {e.capture_id} is already in the campaign "
                                        "with other files or metadata; pass --replace")
                replaced += 1
            elif old is None:
                added += 1
            current[e.capture_id] = e
        doc = {**GROUP, "attributes": {"captures": [e.to_dict() for e in current.values()]}}
        atomic_write(os.path.join(self.root, "manifest", "zarr.json"), json_bytes(doc))
        self.rebuild()
        return added, replaced

    # --- captures ---------------------------------------------------------------------------
    def capture_path(self, capture_id: str) -> str:
        return os.path.join(self.root, "captures", capture_id)

    def has_results(self, capture_id: str) -> bool:
        return os.path.isfile(os.path.join(self.capture_path(capture_id), "zarr.json"))

    def _record_path(self, capture_id: str) -> str:
        return os.path.join(self.root, "records", capture_id, "zarr.json")

    def record(self, capture_id: str) -> dict | None:
        try:
            with open(self._record_path(capture_id), encoding="utf-8") as f:
                return record_from_attrs(json.load(f)["attributes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none yet, or unreadable: the capture is analysed again

    def commit(self, capture_id: str, record: dict) -> None:
        path = self._record_path(capture_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, json_bytes({**GROUP, "attributes": record_to_attrs(record)}))

    def set_attrs(self, **attrs: Any) -> None:
        self.attrs.update(attrs)
        atomic_write(os.path.join(self.root, "zarr.json"),
                      json_bytes({**GROUP, "attributes": self.attrs}))

    # --- tables -----------------------------------------------------------------------------
    def index_order(self) -> list[CaptureEntry]:
        return sorted(self.manifest(), key=lambda e: (e.date, e.tail, e.flight, e.capture_id))

    def rebuild(self) -> dict[str, dict[str, np.ndarray]]:
        """Rewrite every campaign table from the manifest and the commit records."""
        entries = self.index_order()
        records = [own_record(e, self.record(e.capture_id)) for e in entries]
        kept = [self.has_results(e.capture_id) for e in entries]
        tables = {"capture_index": _index(entries, records, kept)}
        done = [(e.tail, r["fleet"]) if r and r["status"] in DONE else (e.tail, _EMPTY)
                for e, r in zip(entries, records, strict=True)]
        tables.update(fleet_tables(done))
        tmp = tempfile.mkdtemp(dir=self.root, prefix=".tables-")
        try:
            put = local_put(tmp)
            for name, columns in LAYOUT.items():
                data = tables[name]
                if set(data) != set(columns):
                    raise AssertionError(f"{name}: {sorted(data)} is not the layout")
                put(f"{name}/zarr.json", json_bytes(GROUP))
                for col, dtype in columns.items():
                    write_array(put, f"{name}/{col}", dtype, data[col])
            for name in LAYOUT:  # swap each table in; a kill here is repaired by the next run
                final = os.path.join(self.root, name)
                if os.path.exists(final):  # out of the way first: removed with tmp below
                    os.replace(final, os.path.join(tmp, f"{name}.old"))
                os.replace(os.path.join(tmp, name), final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.set_attrs(captures=len(entries))
        return tables


_EMPTY = {"flows": [], "types": []}


def _index(entries: list[CaptureEntry], records: list[dict | None], kept: list[bool]
           ) -> dict[str, np.ndarray]:
    cols: dict[str, list] = {c: [] for c in LAYOUT["capture_index"]}
    for e, r, has in zip(entries, records, kept, strict=True):
        r = r or {"status": "pending"}
        facts = r.get("facts", {})
        status, error = r["status"], r.get("error", "")
        if r.get("missing"):
            status, error = "files-missing", missing_text(r) + (
                "; its last results are kept" if has else "")
        for c, v in (("capture_id", e.capture_id), ("tail", e.tail), ("flight", e.flight),
                     ("date", e.date), ("tags", json.dumps(e.tags, sort_keys=True)),
                     ("files", json.dumps(list(e.files))), ("status", status),
                     ("error", error), ("frames", facts.get("frames", 0)),
                     ("first_ns", facts.get("first_ns") or 0),
                     ("last_ns", facts.get("last_ns") or 0), ("flows", facts.get("flows", 0)),
                     ("outliers", facts.get("outliers", 0)),
                     ("problems", facts.get("problems", 0)),
                     ("software_version", facts.get("software_version", ""))):
            cols[c].append(v)
    return {c: (np.array(v, dtype=np.dtypes.StringDType()) if LAYOUT["capture_index"][c] == STRING
                else np.array(v, dtype=np.int64)) for c, v in cols.items()}
