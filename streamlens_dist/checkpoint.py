"""Finished chunk partials kept on disk so that a rerun after a crash recomputes only what is
missing (`analyze --checkpoint DIR`).

A partial is stored under a key that names everything it depends on: the file's identity
(real path, size, modification time in ns), the chunk (byte range, chunk index, first global
frame number, frame count, container layout), the analysis settings that change partials (not
sigma: thresholds are computed after the merge) and the wire-format and software versions. A
changed file, setting or version therefore simply misses. Entries are written atomically
(temporary name, then rename) and checked when read: a damaged entry is recomputed, never
trusted. Everything is msgpack (wire.py), never pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

from . import __version__
from .capture.split import ChunkSpec
from .errors import SettingsError, WireFormatError
from .settings import Settings
from .wire import VERSION, partial_from_bytes


def file_identity(path: str) -> list:
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


class Checkpoint:
    """A directory of chunk partials; `hits` and `stored` count this run's use of it."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.fspath(directory)
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"cannot use checkpoint directory {self.directory}: {exc}") \
                from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise SettingsError(f"checkpoint directory {self.directory} is not writable")
        self.hits = 0
        self.stored = 0
        self._identity: dict[str, list] = {}

    def key(self, spec: ChunkSpec, settings: Settings) -> str:
        ident = self._identity.get(spec.path)
        if ident is None:
            ident = self._identity[spec.path] = file_identity(spec.path)
        what = {"software": __version__, "wire": VERSION, "file": ident,
                "chunk": spec.to_dict() | {"path": None},
                "settings": {k: v for k, v in settings.to_dict().items() if k != "sigma"}}
        text = json.dumps(what, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".partial")

    def load(self, spec: ChunkSpec, settings: Settings) -> bytes | None:
        """The stored partial of this chunk, or None (missing, unreadable or damaged)."""
        try:
            with open(self._path(self.key(spec, settings)), "rb") as f:
                data = f.read()
            part = partial_from_bytes(data)
        except (OSError, WireFormatError):
            return None
        if part.lo != spec.index or part.hi != spec.index or part.frames != spec.frames:
            return None
        self.hits += 1
        return data

    def save(self, spec: ChunkSpec, settings: Settings, data: bytes) -> None:
        path = self._path(self.key(spec, settings))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.stored += 1
