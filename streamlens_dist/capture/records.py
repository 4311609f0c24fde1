"""What the container readers hand to the dissectors, and what they report about damage."""

from __future__ import annotations

from dataclasses import dataclass

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Timestamps must lie strictly within ±TS_BOUND ns (years 1824 to 2116): then the difference
# of any two, so every IAT, IAT sum, minimum and maximum, fits the store's int64 columns. A
# time outside is impossible for a recording (a damaged or hostile header): the frame is
# untimed. pcap times (32-bit seconds) are always inside.
TS_BOUND = 2**62


# Problem kinds. The first group stops or interrupts the reading of a file; the second is
# frame-level damage that is read through; the third concerns a whole input file.
TRUNCATED, CORRUPT_RECORD, CORRUPT_BLOCK = "truncated", "corrupt-record", "corrupt-block"
TOO_MANY = "too-many-problems"
TIMESTAMP, UNKNOWN_INTERFACE = "timestamp", "unknown-interface"
FILE_MISSING, FILE_UNREADABLE, FILE_NOT_CAPTURE = "file-missing", "file-unreadable", "file-not-capture"
# Compressed data that is cut off or corrupt (capture/compressed.py): reading the file stops.
COMPRESSED_DAMAGE = "compressed-damage"
FATAL = (TRUNCATED, CORRUPT_RECORD, CORRUPT_BLOCK)
# A cut-off last record and a literal out-of-range timestamp lose nothing but that record (or
# nothing at all): warnings. Everything else loses data or a file: errors.
WARNINGS = frozenset((TRUNCATED, TIMESTAMP, UNKNOWN_INTERFACE))


@dataclass(frozen=True)
class Problem:
    """Damage found in a capture file: where it is and what it means for the results.

    `frame` is the 1-based number the damaged record would have had (0 for a problem with a
    whole file); `skipped` the bytes passed over to resume reading after it (0 when reading
    stopped there, or nothing was lost).
    """

    file: str
    offset: int
    frame: int
    kind: str
    message: str
    skipped: int = 0

    @property
    def severity(self) -> str:
        return "warning" if self.kind in WARNINGS else "error"

    def to_dict(self) -> dict:
        return {"file": self.file, "offset": self.offset, "frame": self.frame,
                "kind": self.kind, "severity": self.severity, "skipped": self.skipped,
                "message": self.message}

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        return cls(d["file"], d["offset"], d["frame"], d["kind"], d["message"],
                   d.get("skipped", 0))


@dataclass(frozen=True)
class Interface:
    """One capture interface: pcap has exactly one, pcapng one per IDB in the section."""

    linktype: int
    snaplen: int = 0
    tsresol: int = 6  # pcapng if_tsresol byte; pcap: 6 (µs) or 9 (ns)
    tsoffset: int = 0  # seconds added to every timestamp

    def to_list(self) -> list[int]:
        return [self.linktype, self.snaplen, self.tsresol, self.tsoffset]

    @classmethod
    def from_list(cls, v: list[int]) -> Interface:
        return cls(*v)


def ticks_to_ns(ticks: int, tsresol: int, tsoffset: int) -> int | None:
    """Exact integer ns since the epoch for a pcapng tick count (PROTOCOLS.md §7.3).

    Returns None when the result is not within ±TS_BOUND: such a frame is treated as untimed.
    A tick count whose unsigned reading is out of bounds is read again as signed, because some
    writers store negative times that way.
    """
    for t in (ticks, ticks - (1 << 64) if ticks >= 1 << 63 else None):
        if t is None:
            break
        if tsresol & 0x80:
            ns = (t * 1_000_000_000) >> (tsresol & 0x7F)
        elif tsresol <= 9:
            ns = t * 10 ** (9 - tsresol)
        else:
            ns = t // 10 ** (tsresol - 9)
        ns += tsoffset * 1_000_000_000
        if -TS_BOUND < ns < TS_BOUND:
            return ns
    return None
