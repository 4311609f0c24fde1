"""Analysis settings: one frozen object, resolved on the client and sent with every task."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from fractions import Fraction

from .errors import SettingsError

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
MIN_CHUNK_SIZE = 1024
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2,
          "MIB": 1024**2, "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")
_SIGMA_RE = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def parse_size(text: str | int) -> int:
    """Parse a byte count: plain bytes or a KiB/MiB/GiB suffix (binary units)."""
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE_RE.match(text)
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS:
            raise SettingsError(
                f"invalid size {text!r}: give bytes or a unit, e.g. --chunk-size 64MiB, 512KiB, 4096"
            )
        value = int(m.group(1)) * _UNITS[unit]
    if value < MIN_CHUNK_SIZE:
        raise SettingsError(f"chunk size {value} B is below the minimum of {MIN_CHUNK_SIZE} B")
    return value


def parse_sigma(text: str | int | float) -> str:
    """Normalise the sigma threshold to a decimal string that is taken exactly as a fraction."""
    s = str(text).strip()
    if not _SIGMA_RE.match(s):
        raise SettingsError(f"invalid sigma {text!r}: give a positive decimal such as 3 or 2.5")
    if Fraction(s) <= 0:
        raise SettingsError(f"sigma must be > 0, got {text!r}")
    return s


DEFAULT_BIN_NS = 1_000_000_000
MAX_BIN_NS = 1 << 61
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ns|us|µs|ms|s|min|h)?\s*$")
_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "min": 60 * 10**9,
       "h": 3600 * 10**9}


def parse_duration(text: str | int) -> int:
    """A time bin width as whole nanoseconds: an int (ns) or e.g. '1s', '100ms', '5min'."""
    if isinstance(text, bool):
        raise SettingsError(f"invalid time bin {text!r}")
    if isinstance(text, int):
        value = text
    else:
        m = _DURATION_RE.match(str(text))
        if not m:
            raise SettingsError(f"invalid time bin {text!r}: give e.g. 1s, 100ms, 5min or ns")
        value = int(m.group(1)) * _NS[m.group(2) or "ns"]
    if value <= 0:
        raise SettingsError(f"the time bin must be positive, got {text!r}")
    if value > MAX_BIN_NS:  # bin starts (bin * width) must stay in int64
        raise SettingsError(f"the time bin {text!r} is longer than 2^61 ns (73 years)")
    return value


IENA_TYPES = ("P", "D", "N", "M", "Q")


def _key_triples(entries) -> tuple[tuple[int, str, str], ...]:  # noqa: ANN001 - any iterable
    out = {}
    for entry in entries:
        key, ptype, name = (*entry, "")[:3] if len(entry) == 2 else entry
        if not isinstance(key, int) or not 0 <= key <= 0xFFFF or ptype not in IENA_TYPES:
            raise SettingsError(f"invalid IENA key map entry {entry!r}: need (key 0..65535, "
                                f"type one of {', '.join(IENA_TYPES)}, name)")
        out[key] = (key, ptype, str(name))
    return tuple(out[k] for k in sorted(out))


@dataclass(frozen=True)
class Settings:
    """Everything a chunk task needs to know besides its chunk."""

    sigma: str = "3"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # IENA key map (docs/STREAMS.md §6): sorted (key, type letter, name) triples
    iena_keys: tuple[tuple[int, str, str], ...] = ()
    # width of the time bins of the IAT series (docs/SERIES.md), ns
    bin_ns: int = DEFAULT_BIN_NS

    def __post_init__(self) -> None:
        object.__setattr__(self, "bin_ns", parse_duration(self.bin_ns))
        object.__setattr__(self, "sigma", parse_sigma(self.sigma))
        object.__setattr__(self, "chunk_size", parse_size(self.chunk_size))
        object.__setattr__(self, "iena_keys", _key_triples(self.iena_keys))

    @property
    def k(self) -> Fraction:
        return Fraction(self.sigma)

    def to_dict(self) -> dict:
        return asdict(self)

    def iena_key_map(self) -> dict[int, tuple[str, str]]:
        return {k: (t, n) for k, t, n in self.iena_keys}

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        return cls(**d)
