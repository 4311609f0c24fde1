"""An independent oracle for IP flows: tshark field extraction plus exact integer arithmetic.

It shares no code with streamlens_dist/ nor with tests/reference.py. tshark (Wireshark's
dissectors) decides which frames carry an IP header and with which addresses; everything
else (timestamps, IAT statistics, outliers) is computed here with Python integers and
fractions.Fraction, straight from docs/CONTRACT.md §4-§6.

Public API:

    tshark_ip_flows(path, sigma="3", *, wrap_ticks_ns=None) -> dict[(src, dst, kind), dict]
    tshark_frames(path, *, wrap_ticks_ns=None) -> list[TsharkFrame]

Frame numbers are the contract's (CONTRACT §1): tshark 4.0 also lists pcapng Custom Blocks
as "frames" (they have no encapsulation type); the contract says blocks of unknown type are
not frames, so those records are dropped and the remaining ones renumbered 1..N.
"""

from __future__ import annotations

import ipaddress
import math
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

TSHARK_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.cap_len",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "frame.protocols",
    "frame.encap_type",
    "frame.interface_id",
)

# Preferences that keep tshark's view per frame: no reassembly, so each frame is
# dissected from its own bytes only (the contract never reassembles, CONTRACT §3).
TSHARK_PREFS = (
    "ip.defragment:FALSE",
    "ipv6.defragment:FALSE",
    "tcp.desegment_tcp_streams:FALSE",
)


def tshark_path() -> str | None:
    return shutil.which("tshark")


@dataclass(frozen=True)
class TsharkFrame:
    frame: int  # contract frame number (custom-block records removed)
    tshark_frame: int  # tshark's own frame number
    ts_ns: int | None  # None: untimed (no timestamp, or no int64 can hold it)
    cap_len: int
    flow: tuple[str, str, str] | None  # (src, dst, kind) from the outermost IP header
    interface_id: int | None


def parse_epoch_ns(text: str) -> int:
    """'1422527998.578402281' -> 1422527998578402281, exactly (no float on the way)."""
    s = text.strip()
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    whole, _, frac = s.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 9:
        raise ValueError(f"unexpected frame.time_epoch {text!r}")
    ns = int(whole) * 10**9 + int(frac.ljust(9, "0") or "0")
    return -ns if neg else ns


def wrap_unsigned_ticks(ns: int, ns_per_tick: int) -> int:
    """tshark prints a pcapng tick count >= 2^63 as unsigned; the contract's engine reads the
    64-bit tick count as a signed int64 (a negative time written as unsigned). Undo that."""
    ticks, rem = divmod(ns, ns_per_tick)
    if rem or not 2**63 <= ticks < 2**64:
        return ns
    return (ticks - 2**64) * ns_per_tick


def _outermost_ip(protocols: str, ip4: tuple[str, str], ip6: tuple[str, str]) -> tuple | None:
    """The flow key of the outermost IP header, from tshark's protocol stack order."""
    for proto in protocols.split(":"):
        if proto == "ip":
            if ip4[0] and ip4[1]:
                return (ip4[0], ip4[1], "ip4")
            return None  # tshark saw an IPv4 layer but could not decode its addresses
        if proto == "ipv6":
            if ip6[0] and ip6[1]:
                return (
                    ipaddress.IPv6Address(ip6[0]).compressed,
                    ipaddress.IPv6Address(ip6[1]).compressed,
                    "ip6",
                )
            return None
    return None


def run_tshark(path: str | Path) -> list[list[str]]:
    exe = tshark_path()
    if exe is None:
        raise RuntimeError("tshark is not installed")
    cmd = [exe, "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=f"]
    for pref in TSHARK_PREFS:
        cmd += ["-o", pref]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(TSHARK_FIELDS) - len(cols))
        rows.append(cols)
    return rows


def tshark_frames(
    path: str | Path, *, wrap_ticks_ns: dict[int, int] | None = None
) -> list[TsharkFrame]:
    """One record per contract frame. `wrap_ticks_ns` maps a pcapng interface id to its
    nanoseconds per tick, for interfaces whose tick counts tshark shows as unsigned values
    >= 2^63 (see wrap_unsigned_ticks)."""
    frames = []
    number = 0
    for cols in run_tshark(path):
        (num, epoch, cap_len, ip_src, ip_dst, ip6_src, ip6_dst,
         protocols, encap, iface) = cols[: len(TSHARK_FIELDS)]
        if not encap:
            continue  # a pcapng Custom Block shown as a frame: not a frame (CONTRACT §1)
        number += 1
        interface_id = int(iface) if iface else None
        ts: int | None = None
        if epoch:
            ts = parse_epoch_ns(epoch)
            if wrap_ticks_ns and interface_id in wrap_ticks_ns:
                ts = wrap_unsigned_ticks(ts, wrap_ticks_ns[interface_id])
            if not INT64_MIN <= ts <= INT64_MAX:
                ts = None
        frames.append(TsharkFrame(
            frame=number,
            tshark_frame=int(num),
            ts_ns=ts,
            cap_len=int(cap_len),
            flow=_outermost_ip(protocols, (ip_src, ip_dst), (ip6_src, ip6_dst)),
            interface_id=interface_id,
        ))
    return frames


def outlier_threshold_test(n: int, s: int, q: int, k: Fraction):
    """The exact predicate of CONTRACT §6 for one scope, as a function of the IAT x."""
    p, d = k.numerator, k.denominator
    rhs = p * p * n * (n * q - s * s)

    def is_outlier(x: int) -> bool:
        dev = n * x - s
        return dev > 0 and dev * dev * (n - 1) * d * d > rhs

    return is_outlier


def flow_stats(members: list[tuple[int, int, int]], k: Fraction) -> dict:
    """Statistics of one scope. `members` = [(frame, ts_ns, cap_len)] in frame order."""
    iats = [(members[i][0], members[i][1], members[i][1] - members[i - 1][1])
            for i in range(1, len(members))]
    n = len(iats)
    s = sum(x for _, _, x in iats)
    q = sum(x * x for _, _, x in iats)
    out = {
        "frames": len(members),
        "bytes": sum(m[2] for m in members),
        "first_ns": members[0][1],
        "last_ns": members[-1][1],
        "first_frame": members[0][0],
        "last_frame": members[-1][0],
        "iat_count": n,
        "iat_sum_ns": s,
        "iat_min_ns": min((x for _, _, x in iats), default=0),
        "iat_max_ns": max((x for _, _, x in iats), default=0),
        "iat_mean_ns": s / n if n else math.nan,
        "iat_std_ns": math.sqrt((n * q - s * s) / (n * (n - 1))) if n >= 2 else math.nan,
        "iat_sumsq": q,
    }
    outliers: dict[int, tuple[int, int]] = {}
    if n >= 2:
        test = outlier_threshold_test(n, s, q, k)
        outliers = {frame: (ts, x) for frame, ts, x in iats if test(x)}
    out["outliers"] = outliers  # frame -> (ts_ns, iat_ns)
    return out


def tshark_ip_flows(
    path: str | Path, sigma: str = "3", *, wrap_ticks_ns: dict[int, int] | None = None
) -> dict[tuple[str, str, str], dict]:
    """Per (src, dst, kind) IP flow (kind ip4/ip6), the statistics of CONTRACT §5 and the
    outliers of §6 (`outliers`: frame number -> (ts_ns, iat_ns)). Untimed frames are kept
    out of flows (CONTRACT §1)."""
    k = Fraction(sigma)
    by_flow: dict[tuple[str, str, str], list[tuple[int, int, int]]] = {}
    for f in tshark_frames(path, wrap_ticks_ns=wrap_ticks_ns):
        if f.flow is None or f.ts_ns is None:
            continue
        by_flow.setdefault(f.flow, []).append((f.frame, f.ts_ns, f.cap_len))
    return {key: flow_stats(members, k) for key, members in by_flow.items()}
