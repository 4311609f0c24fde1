"""What the container readers hand to the dissectors, and what they report about damage."""

from __future__ import annotations

from dataclasses import dataclass

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Problem:
    """Damage found in a capture file: where it is and what it means for the results."""

    file: str
    offset: int
    frame: int  # 1-based frame number within the file the damaged record would have had
    kind: str
    message: str

    def to_dict(self) -> dict:
        return {"file": self.file, "offset": self.offset, "frame": self.frame,
                "kind": self.kind, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        return cls(**d)


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

    Returns None when the result cannot be an int64: such a frame is treated as untimed. A
    tick count that overflows as unsigned is first read as signed, because some writers store
    negative times that way.
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
        if INT64_MIN <= ns <= INT64_MAX:
            return ns
    return None
