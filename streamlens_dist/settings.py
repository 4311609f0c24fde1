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


@dataclass(frozen=True)
class Settings:
    """Everything a chunk task needs to know besides its chunk."""

    sigma: str = "3"
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", parse_sigma(self.sigma))
        object.__setattr__(self, "chunk_size", parse_size(self.chunk_size))

    @property
    def k(self) -> Fraction:
        return Fraction(self.sigma)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        return cls(**d)
