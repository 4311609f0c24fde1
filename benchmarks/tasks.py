"""The measured work, one task per fresh interpreter: ``python tasks.py TASK 'JSON ARGS'``.

Each task imports what it needs, notes its resident memory after the imports, times only
its work and prints ``RESULT {json}`` (``seconds`` always; ``frames``, ``flows``,
``outliers``, ``gaps_found`` where they apply). ``common.run_task`` starts these and samples
the memory of the whole process tree from outside.

Baselines are written the way an engineer would write them today, not tuned:

- ``dpkt``: dpkt's reader and Ethernet/IP decode per packet, flows keyed by the IP (else MAC)
  address pair, float timestamps, IATs kept per flow, then numpy mean/std and 3-sigma outliers.
- ``tshark_pandas``: ``tshark -T fields`` piped into ``pandas.read_csv``, then a groupby for
  the IATs, mean/std per flow and 3-sigma outliers.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def task(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    TASKS[fn.__name__] = fn
    return fn


def rss_bytes() -> int:
    """Current resident set size of this process."""
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """High-water mark of this process's RSS (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def gap_frames(args: dict[str, Any]) -> set[int] | None:
    path = args.get("truth")
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return {g["frame"] for g in json.load(f)["gaps"]}


def found(gaps: set[int] | None, outlier_frames: Any) -> int | None:
    if gaps is None:
        return None
    return len(gaps.intersection(int(x) for x in outlier_frames))


# --------------------------------------------------------------------------- baselines


@task
def dpkt_loop(args: dict[str, Any]) -> dict[str, Any]:
    import dpkt
    import numpy as np

    path = args["capture"]
    gaps = gap_frames(args)
    after_imports = rss_bytes()
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        last: dict[tuple[bytes, bytes], float] = {}
        iats: dict[tuple[bytes, bytes], list[tuple[int, float]]] = {}
        n = bad = 0
        for ts, buf in reader:
            n += 1
            try:
                eth = dpkt.ethernet.Ethernet(buf)
            except dpkt.UnpackError:
                bad += 1
                continue
            ip = eth.data
            key = (ip.src, ip.dst) if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else (eth.src, eth.dst)
            prev = last.get(key)
            last[key] = ts
            if prev is not None:
                iats.setdefault(key, []).append((n, ts - prev))
    outliers: list[int] = []
    for rows in iats.values():
        x = np.array([iat for _, iat in rows])
        if len(x) < 2:
            continue
        limit = x.mean() + 3 * x.std(ddof=1)
        outliers.extend(frame for frame, iat in rows if iat > limit)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": n, "flows": len(last), "outliers": len(outliers),
            "undecoded": bad, "gaps_found": found(gaps, outliers),
            "rss_after_imports": after_imports, "peak_rss_self": peak_rss_bytes()}


TSHARK_FIELDS = ("frame.time_epoch", "ip.src", "ip.dst", "eth.src", "eth.dst", "frame.cap_len")


@task
def tshark_pandas(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    path = args["capture"]
    gaps = gap_frames(args)
    tshark = args.get("tshark") or shutil.which("tshark") or "tshark"
    after_imports = rss_bytes()
    t0 = time.perf_counter()
    cmd = [tshark, "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for fld in TSHARK_FIELDS:
        cmd += ["-e", fld]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    df = pd.read_csv(proc.stdout, sep="\t", header=None, names=["t", "ip_src", "ip_dst", "eth_src",
                                                                "eth_dst", "length"],
                     dtype={"t": "float64", "ip_src": "string", "ip_dst": "string",
                            "eth_src": "string", "eth_dst": "string", "length": "int64"})
    if proc.wait() != 0:
        raise RuntimeError(f"tshark exited with {proc.returncode}")
    df["src"] = df["ip_src"].fillna(df["eth_src"])
    df["dst"] = df["ip_dst"].fillna(df["eth_dst"])
    by_flow = df.groupby(["src", "dst"], sort=False)
    df["iat"] = by_flow["t"].diff()
    per_flow = df.groupby(["src", "dst"], sort=False)["iat"]
    stats = per_flow.agg(["count", "mean", "std"])
    limit = per_flow.transform("mean") + 3 * per_flow.transform("std")
    outliers = df.index[df["iat"] > limit] + 1  # frame numbers are 1-based
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames": len(df), "flows": len(stats), "outliers": len(outliers),
            "gaps_found": found(gaps, outliers), "rss_after_imports": after_imports,
            "peak_rss_self": peak_rss_bytes()}


# --------------------------------------------------------------------------- the engine


@task
def engine(args: dict[str, Any]) -> dict[str, Any]:
    """``streamlens_dist.analyze`` once: ``serial`` in this process, else ``workers`` processes
    of a local cluster that analyze starts (its start-up is timed and reported apart)."""
    import streamlens_dist

    if args.get("force_reread"):  # pass 1 keeps no IAT: every chunk with a candidate is re-read
        from streamlens_dist import scopestats

        scopestats.KEEP_ABOVE_STD, scopestats.KEEP_ALL_UP_TO = math.inf, 0
    gaps = gap_frames(args)
    after_imports = rss_bytes()
    tmp = tempfile.mkdtemp(prefix="slbench-")
    try:
        t0 = time.perf_counter()
        s = streamlens_dist.analyze(args["capture"], os.path.join(tmp, "out.zarr"),
                                    chunk_size=args["chunk_size"], workers=args.get("workers"),
                                    serial=bool(args.get("serial")), overwrite=True)
        seconds = time.perf_counter() - t0
        d = s.to_dict()
        try:
            outlier_frames = s.tables.flow_outliers["frame"][:]
        except (AttributeError, KeyError, TypeError):
            outlier_frames = None
        return {"seconds": seconds, "frames": s.frames, "wall_s": s.wall_s,
                "phases": dict(s.phases), "chunks": d.get("chunks"), "flows": d.get("flows"),
                "outliers": d.get("outliers"),
                "gaps_found": None if outlier_frames is None else found(gaps, outlier_frames),
                "rss_after_imports": after_imports, "peak_rss_self": peak_rss_bytes()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- memory


class AnonSampler:
    """Peak RssAnon of this process, sampled from a thread (Linux; RSS elsewhere).

    The splitter maps the capture file to scan record headers; those clean page-cache pages
    count in RSS but are not memory the chunk processing holds, so both are reported.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/status", "rb") as f:
                for line in f:
                    if line.startswith(b"RssAnon:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return rss_bytes()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(self.interval)

    def __enter__(self) -> AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


@task
def chunk_memory(args: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of the engine's chunk processing at one chunk size.

    ``mode`` "serial": ``analyze(serial=True)`` in this process (chunks are processed one after
    another, so the peak is one chunk's worth plus the small partials). ``mode`` "worker":
    ``analyze`` on a one-worker local cluster passed as ``client``; the worker process's RSS
    is sampled from here, its baseline taken after it imported the engine.
    """
    import gc

    import streamlens_dist

    tmp = tempfile.mkdtemp(prefix="slbench-")
    store = os.path.join(tmp, "out.zarr")
    try:
        if args.get("mode", "serial") == "serial":
            gc.collect()
            base_rss, base_anon = rss_bytes(), AnonSampler.now()
            with AnonSampler() as anon:
                t0 = time.perf_counter()
                s = streamlens_dist.analyze(args["capture"], store, chunk_size=args["chunk_size"],
                                            serial=True, overwrite=True)
                seconds = time.perf_counter() - t0
            return {"seconds": seconds, "frames": s.frames, "chunks": s.to_dict().get("chunks"),
                    "base_rss": base_rss, "peak_rss": peak_rss_bytes(), "base_anon": base_anon,
                    "peak_anon": anon.peak}
        return _worker_memory(args, store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _worker_memory(args: dict[str, Any], store: str) -> dict[str, Any]:
    import psutil
    from distributed import Client, LocalCluster

    import streamlens_dist

    def warm() -> int:
        import gc

        import streamlens_dist  # noqa: F401  (the worker's imports count as its baseline)

        gc.collect()
        return os.getpid()

    with (LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=None, silence_logs=40) as cluster,
          Client(cluster) as client):
        pid = next(iter(client.run(warm).values()))
        worker = psutil.Process(pid)

        def anon() -> int:
            try:
                with open(f"/proc/{pid}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"RssAnon:"):
                            return int(line.split()[1]) * 1024
            except OSError:
                pass
            return worker.memory_info().rss

        base_rss, base_anon = worker.memory_info().rss, anon()
        peak = {"rss": base_rss, "anon": base_anon}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak["rss"] = max(peak["rss"], worker.memory_info().rss)
                    peak["anon"] = max(peak["anon"], anon())
                except psutil.Error:
                    return
                stop.wait(0.005)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        try:
            s = streamlens_dist.analyze(args["capture"], store, chunk_size=args["chunk_size"],
                                        client=client, overwrite=True)
        finally:
            seconds = time.perf_counter() - t0
            stop.set()
            th.join()
    return {"seconds": seconds, "frames": s.frames, "chunks": s.to_dict().get("chunks"),
            "base_rss": base_rss, "peak_rss": peak["rss"], "base_anon": base_anon,
            "peak_anon": peak["anon"]}


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@task
def reducer(args: dict[str, Any]) -> dict[str, Any]:
    """Merge synthetic partials of ``flows`` flows x ``chunks`` chunks with the engine's merge.

    ``inputs`` "materialized": all chunk partials are built first, then ``combine_all`` (what
    the serial path does with the partials of every chunk). "streamed": chunk partials are
    built one at a time and folded with ``combine`` in the same in-order pairwise tree, so
    only the reduction's own state is resident (with reduction.py: the client's fold, which
    also holds each chunk's Before until pass 2).
    """
    import gc

    from streamlens_dist import partial as P

    flows, chunks = int(args["flows"]), int(args["chunks"])
    types_per_flow = int(args.get("types_per_flow", 1))
    iats = int(args.get("iats_per_chunk", 2))
    keys = [(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", f"235.0.{i >> 8 & 255}.{i & 255}", "ip4")
            for i in range(flows)]
    tkeys = [[(k, f"TYPE-{j}") for j in range(types_per_flow)] for k in keys]
    period = 10_000_000  # 10 ms per flow; frames interleave flow by flow
    start = 1_700_000_000_000_000_000
    per_chunk = flows * (iats + 1)
    new_stats = getattr(P, "new_stats", None)
    add_iat = getattr(P, "add_iat", None)

    def stats(frame: int, ts: int) -> list:
        if new_stats is not None and add_iat is not None:
            st = new_stats(frame, ts, 200)
            for j in range(1, iats + 1):
                add_iat(st, frame + j * flows, ts + j * period, 200)
            return st
        # [frames, bytes, first_frame, first_ns, last_frame, last_ns, n, S, Q, min, max]
        n = iats
        return [n + 1, 200 * (n + 1), frame, ts, frame + n * flows, ts + n * period, n,
                n * period, n * period * period, period if n else None, period if n else None]

    def leaf(c: int) -> Any:
        p = P.Partial(lo=c, hi=c, frames=per_chunk)
        p.first_ns = start + c * (iats + 1) * period
        frame0 = 1 + c * per_chunk
        for i, k in enumerate(keys):
            st = stats(frame0 + i, p.first_ns + i)
            p.flows[k] = st
            for tk in tkeys[i]:
                p.types[tk] = list(st)
        p.last_ns = p.first_ns + iats * period + flows - 1
        if hasattr(p, "flow_table"):  # columns, as chunk partials arrive (scopetable.py)
            p.flows, p.types = p.flow_table(), p.type_table()
        if hasattr(p, "flow_series"):  # the IAT series and histograms (docs/SERIES.md)
            import numpy as np

            from streamlens_dist.series import chunk_series

            j = np.repeat(np.arange(iats + 1, dtype=np.int64), flows)
            scope = np.tile(np.arange(flows, dtype=np.int64), iats + 1)
            ts = p.first_ns + j * period + scope
            size = np.full(len(ts), 200, np.int64)
            p.flow_series, p.flow_hist = chunk_series(scope, ts, size, p.bin_ns)
            if types_per_flow:  # every type of a flow holds the flow's frames (as above)
                tpf = types_per_flow
                p.type_series, p.type_hist = chunk_series(
                    np.concatenate([scope * tpf + t for t in range(tpf)]), np.tile(ts, tpf),
                    np.tile(size, tpf), p.bin_ns)
        return p

    gc.collect()
    after_imports = rss_bytes()
    t0 = time.perf_counter()
    if args.get("inputs", "streamed") == "materialized":
        parts = [leaf(c) for c in range(chunks)]
        built = time.perf_counter()
        inputs_rss = rss_bytes()
        merged = P.combine_all(parts)
        del parts
    elif _has_module("streamlens_dist.reduction"):
        # the client's fold (engine.py): the ordered tree and each chunk's Before, held
        # until pass 2
        from streamlens_dist.reduction import Reducer

        red, build_s = Reducer(), 0.0
        for c in range(chunks):
            tl = time.perf_counter()
            part = leaf(c)
            build_s += time.perf_counter() - tl
            red.add(part)
        merged = red.merged()
        before_bytes = sum(len(b) for b in red.before)
        inputs_rss = None
    else:
        # Binary-counter fold: the same ordered pairwise tree shape, leaves built on demand.
        stack: list[tuple[int, Any]] = []
        build_s = 0.0
        for c in range(chunks):
            tl = time.perf_counter()
            node, size = leaf(c), 1
            build_s += time.perf_counter() - tl
            while stack and stack[-1][0] == size:
                node, size = P.combine(stack.pop()[1], node), size * 2
            stack.append((size, node))
        merged = stack.pop()[1]
        while stack:
            merged = P.combine(stack.pop()[1], merged)
        inputs_rss = None
    seconds = time.perf_counter() - t0
    if inputs_rss is not None:
        build_s = built - t0
    # Older engines kept every seam IAT in the partial (flow_boundaries, type_boundaries);
    # newer ones carry a prefix down the tree instead and keep none here.
    boundaries = len(getattr(merged, "flow_boundaries", ())) + len(getattr(merged, "type_boundaries", ()))
    # Merging in order adds each seam IAT: every flow has chunks*(iats+1) frames, one IAT less.
    expect = chunks * (iats + 1)
    stats_ok = all(merged.flows[k][0] == expect and merged.flows[k][6] == expect - 1
                   and merged.flows[k][7] == (expect - 1) * period for k in (keys[0], keys[-1]))
    ser = getattr(merged, "flow_series", None)
    if ser is not None:  # every frame and IAT is in exactly one bin
        stats_ok = stats_ok and int(ser.cols["frames"].sum()) == flows * expect \
            and int(ser.cols["n"].sum()) == flows * (expect - 1)
    result_rss = rss_bytes()
    return {"seconds": seconds, "build_s": build_s, "merge_s": seconds - build_s,
            "flows": len(merged.flows), "chunks": merged.hi - merged.lo + 1,
            "before_bytes": locals().get("before_bytes"),
            "frames": merged.frames, "boundaries": boundaries, "stats_ok": stats_ok,
            "rss_after_imports": after_imports,
            "rss_inputs": inputs_rss, "rss_result": result_rss, "peak_rss_self": peak_rss_bytes()}


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    if name not in TASKS:
        raise SystemExit(f"unknown task {name!r}; one of {', '.join(TASKS)}")
    print("RESULT " + json.dumps(TASKS[name](args)), flush=True)


if __name__ == "__main__":
    main()
