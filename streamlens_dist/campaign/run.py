"""`campaign run`: analyse the captures that are new, changed (file identity) or not yet
committed, several at a time on one Dask cluster, commit each one atomically, then rebuild the
campaign tables from the commit records. A capture whose files are missing is not analysed
and keeps what it had (cstore's docstring: the statuses)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..api import analyze
from ..capture.source import Storage
from ..engine import cluster_client
from ..errors import ClusterError, StreamlensError
from ..security import TLSArg, check_tls, tls_config
from .cstore import Campaign, missing_text, own_record
from .fleet import capture_summary, record_from_attrs, record_to_attrs
from .identity import capture_identity, identity_bytes
from .manifest import CaptureEntry

# (captures done, captures to do, bytes done, bytes to do, capture id just finished)
CampaignProgress = Callable[[int, int, int, int, str], None]


@dataclass
class Plan:
    todo: list[tuple[CaptureEntry, list]]  # (capture, its identity now)
    unchanged: list[str] = field(default_factory=list)
    missing: dict[str, list] = field(default_factory=dict)  # id: [[path, message], ...]

    @property
    def bytes(self) -> int:
        return sum(identity_bytes(i) for _e, i in self.todo)


@dataclass
class RunReport:
    analysed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # id: which files, why
    frames: int = 0
    bytes: int = 0
    wall_s: float = 0.0


def plan_run(camp: Campaign, storage: Storage | None = None, retry_failed: bool = False
             ) -> Plan:
    """Which captures need analysing: no commit record, another identity, or (with
    `retry_failed`) a failed one; never one whose files are missing (a moved archive or
    unmounted disk must not turn good results into failures)."""
    plan = Plan([])
    for e in camp.manifest():
        ident = capture_identity(e.files, storage)
        rec = own_record(e, camp.record(e.capture_id))
        missing = [[i[0], i[2]] for i in ident if i[1] == "unavailable"]
        if missing:
            plan.missing[e.capture_id] = missing
        elif rec is not None and rec["status"] != "pending" and rec["identity"] == ident \
                and not (retry_failed and rec["status"] == "failed"):
            plan.unchanged.append(e.capture_id)
        else:
            plan.todo.append((e, ident))
    return plan


def _note_missing(camp: Campaign, plan: Plan) -> dict[str, str]:
    """Commit which files each capture misses now, and forget it for those whose files are
    back; everything else in their records stays. Returns {capture id: what is missing}."""
    out = {}
    for e in camp.manifest():
        rec = camp.record(e.capture_id)
        mine = own_record(e, rec)
        missing = plan.missing.get(e.capture_id)
        if missing is not None:
            new = {**(mine or _record(e, [], status="pending")), "missing": missing}
            out[e.capture_id] = missing_text(new)
        elif mine is not None and mine.get("missing"):
            new = {k: v for k, v in mine.items() if k != "missing"}
        else:
            continue
        if new != rec:
            camp.commit(e.capture_id, new)
    return out


def _record(e: CaptureEntry, ident: list, summary: Any = None, error: str = "",
            status: str = "failed") -> dict:
    if summary is None:
        return {"identity": ident, "files": list(e.files), "status": status, "error": error,
                "facts": {"software_version": __version__}, "fleet": {"flows": [], "types": []}}
    a = summary.attrs
    return {"identity": ident, "files": list(e.files),
            "status": "problems" if summary.has_data_problems else "ok", "error": "",
            "facts": {"frames": a["frames"], "first_ns": a["first_ns"], "last_ns": a["last_ns"],
                      "flows": len(summary.tables.flows["src"]),
                      "outliers": len(summary.tables.flow_outliers["frame"]),
                      "problems": len(a["problems"]), "software_version": __version__},
            "fleet": capture_summary(summary)}


def analyse_capture(e: CaptureEntry, ident: list, path: str, sigma: str, chunk_size: int,
                    storage: Storage | None, client: Any = None) -> dict:
    """Analyse one capture into its group at `path` (on `client`'s cluster, else in this
    process) and return its commit record; a capture that cannot be analysed at all gets a
    failed record and its group, if any, stays as it was (the store is replaced only by a
    finished analysis); a lost cluster raises."""
    try:
        summary = analyze(list(e.files), path, sigma=sigma, chunk_size=chunk_size,
                          client=client, serial=client is None, overwrite=True,
                          storage_options=storage)
        return _record(e, ident, summary)
    except ClusterError:
        raise
    except StreamlensError as exc:
        return _record(e, ident, error=str(exc))


def _stamp(path: str) -> tuple[int, int] | None:
    """(inode, mtime) of a complete group's zarr.json: a group renamed into place since has
    another, so an older group is never taken for one a worker has just written."""
    name = os.path.join(path, "zarr.json")
    try:
        with open(name, encoding="utf-8") as f:
            if json.load(f)["attributes"].get("complete") is not True:
                return None
        st = os.stat(name)
    except (OSError, ValueError, KeyError):
        return None
    return st.st_ino, st.st_mtime_ns


def capture_task(entry: dict, ident: list, path: str, sigma: str, chunk_size: int,
                 storage: Storage | None) -> bytes:
    """`analyse_capture` on a worker (the campaign store on a filesystem it shares), the
    record as JSON bytes."""
    from ..engine import _check_worker

    _check_worker()
    record = analyse_capture(CaptureEntry.from_dict(entry), ident, path, sigma, chunk_size,
                             storage)
    return json.dumps(record_to_attrs(record)).encode()


def run_campaign(root: str | os.PathLike, *, scheduler: str | None = None,
                 workers: int | None = None, serial: bool = False, client: Any = None,
                 storage_options: Storage | None = None, concurrency: int | None = None,
                 retry_failed: bool = False, tls: TLSArg = None,
                 progress: CampaignProgress | None = None,
                 on_plan: Callable[[Plan], None] | None = None) -> RunReport:
    """Analyse what is new or changed in the campaign at `root` and rebuild its tables.

    Captures run `concurrency` at a time (default: twice the cluster's workers) on one
    cluster, each as one analysis graph, so many small captures keep the workers busy while
    the tasks in flight stay bounded. A capture that cannot be analysed at all is committed as
    failed with its error (and retried only when its files change or with `retry_failed`);
    one whose files are missing is not analysed (`RunReport.missing`) and keeps its results;
    a lost cluster stops the run (ClusterError), and what was committed stays.
    """
    t0 = time.perf_counter()
    camp = Campaign(root)
    storage = dict(storage_options) if storage_options else None
    plan = plan_run(camp, storage, retry_failed)
    if on_plan is not None:
        on_plan(plan)
    report = RunReport(unchanged=list(plan.unchanged), missing=_note_missing(camp, plan))
    total, total_bytes = len(plan.todo), plan.bytes
    if plan.todo:
        camp.set_attrs(complete=False)
        lock = threading.Lock()
        done_bytes = [0]

        sigma, chunk_size = camp.attrs["sigma"], int(camp.attrs["chunk_size"])

        shared = [True]  # do the workers see the campaign store? (until shown otherwise)

        def one(e: CaptureEntry, ident: list, c: Any) -> None:
            path = camp.capture_path(e.capture_id)
            record, before = None, _stamp(path)
            if c is not None and shared[0] and identity_bytes(ident) <= chunk_size:
                # A small capture is analysed and written by one worker, all of it: the
                # client would otherwise do most of the work (its store write) itself.
                record = record_from_attrs(json.loads(c.submit(
                    capture_task, e.to_dict(), ident, path, sigma, chunk_size, storage,
                    pure=False, key=f"sl-capture-{e.capture_id}-{uuid.uuid4().hex}").result()))
                if record["status"] != "failed" and _stamp(path) in (None, before):
                    # written where this machine cannot see it (workers without the shared
                    # filesystem): from now on the client writes, and this one again
                    shared[0] = False
                    record = None
            if record is None:
                record = analyse_capture(e, ident, path, sigma, chunk_size, storage, c)
            if record["status"] == "failed" and camp.has_results(e.capture_id):
                record["error"] += "; the results of its last successful analysis are kept"
            camp.commit(e.capture_id, record)
            with lock:
                if record["status"] == "failed":
                    report.failed[e.capture_id] = record["error"]
                else:
                    report.analysed.append(e.capture_id)
                    report.frames += record["facts"]["frames"]
                done_bytes[0] += identity_bytes(ident)
                n = len(report.analysed) + len(report.failed)
                if progress is not None:
                    progress(n, total, done_bytes[0], total_bytes, e.capture_id)

        with _cluster(serial, client, scheduler, workers, tls) as c:
            if c is None:
                for e, ident in plan.todo:
                    one(e, ident, None)
            else:
                n = concurrency or 2 * max(1, len(c.scheduler_info().get("workers", {})))
                with concurrent.futures.ThreadPoolExecutor(n) as pool:
                    futures = [pool.submit(one, e, ident, c) for e, ident in plan.todo]
                    for f in concurrent.futures.as_completed(futures):
                        f.result()
    camp.rebuild()
    camp.set_attrs(complete=True)
    report.bytes = total_bytes
    report.wall_s = time.perf_counter() - t0
    return report


@contextlib.contextmanager
def _cluster(serial: bool, client: Any, scheduler: str | None, workers: int | None,
             tls: TLSArg) -> Iterator[Any]:
    if serial:
        yield None
    elif client is not None:
        yield client
    else:
        from ..engine import scheduler_address

        with tls_config(check_tls(tls, scheduler_address(scheduler))), \
                cluster_client(scheduler, workers) as c:
            yield c
