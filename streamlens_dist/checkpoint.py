"""Finished chunk partials kept in a directory or under an fsspec URL (`s3://bucket/ckpt/`) so
that a rerun after a crash recomputes only what is missing (`analyze --checkpoint DIR|URL`).

A partial is stored under a key that names everything it depends on: the file's identity
(real path, size, modification time in ns; for a URL: URL, size, ETag or modification time),
the chunk (byte range, chunk index, first global frame number, frame count, container layout),
the analysis settings that change partials (not sigma: thresholds are computed after the
merge) and the wire-format and software versions. A changed file, setting or version
therefore simply misses. Entries are written atomically (temporary name, then rename; one
PUT on object storage) and checked when read: a damaged entry is recomputed, never trusted.
Everything is msgpack (wire.py), never pickle.
"""

from __future__ import annotations

import hashlib
import json
import os

from . import __version__
from .capture import source
from .capture.split import ChunkSpec
from .errors import OutputRefusedError, SettingsError, StorageError, WireFormatError
from .settings import Settings
from .store import atomic_write
from .wire import VERSION, partial_from_bytes

MARKER = "streamlens-checkpoint.json"  # says a directory is a checkpoint (entries may go in)
_MARK = b'{"schema": "streamlens-dist-checkpoint/1"}\n'


def file_identity(path: str, storage: source.Storage | None = None) -> list:
    if source.is_url(path):
        return source.identity(path, storage)
    st = os.stat(source.local_path(path))
    return [os.path.realpath(source.local_path(path)), st.st_size, st.st_mtime_ns]


class Checkpoint:
    """A directory (or URL prefix) of chunk partials; `hits` and `stored` count this run's
    use of it. `storage`: fsspec options for a URL, for the captures' URLs as well."""

    def __init__(self, directory: str | os.PathLike, storage: source.Storage | None = None
                 ) -> None:
        self.directory = os.fspath(directory)
        self.storage = storage
        self.hits = 0
        self.stored = 0
        self._identity: dict[str, list] = {}
        self._fs = None
        if source.is_url(self.directory):
            self._fs, self._root = source.filesystem(self.directory, storage, StorageError)
            with source.errors(self.directory, "checkpoint cannot be used", StorageError,
                               StorageError):
                names = [n.rstrip("/").rsplit("/", 1)[-1] for n in self._fs.ls(self._root)] \
                    if self._fs.exists(self._root) else []
                self._check_ours(names)
                if MARKER not in names:
                    self._fs.pipe_file(f"{self._root.rstrip('/')}/{MARKER}", _MARK)
            return
        self.directory = source.local_path(self.directory)
        try:
            os.makedirs(self.directory, exist_ok=True)
            names = os.listdir(self.directory)
        except OSError as exc:
            raise SettingsError(f"cannot use checkpoint directory {self.directory}: {exc}") \
                from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise SettingsError(f"checkpoint directory {self.directory} is not writable")
        self._check_ours(names)
        if MARKER not in names:
            atomic_write(os.path.join(self.directory, MARKER), _MARK)

    def _check_ours(self, names: list[str]) -> None:
        """Entries go only into an empty location or one of ours: a checkpoint made before
        the marker holds only the two-hex-digit directories of its entries."""
        if names and MARKER not in names and not all(
                len(n) == 2 and all(c in "0123456789abcdef" for c in n) for n in names):
            raise OutputRefusedError(f"{self.directory} is not a streamlens-dist checkpoint "
                                     "(it holds other files); give an empty or new directory")

    def key(self, spec: ChunkSpec, settings: Settings) -> str:
        ident = self._identity.get(spec.path)
        if ident is None:
            ident = self._identity[spec.path] = file_identity(spec.path, self.storage)
        what = {"software": __version__, "wire": VERSION, "file": ident,
                "chunk": spec.to_dict() | {"path": None},
                "settings": {k: v for k, v in settings.to_dict().items() if k != "sigma"}}
        text = json.dumps(what, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> str:
        if self._fs is not None:
            return f"{self._root.rstrip('/')}/{key[:2]}/{key}.partial"
        return os.path.join(self.directory, key[:2], key + ".partial")

    def load(self, spec: ChunkSpec, settings: Settings) -> bytes | None:
        """The stored partial of this chunk, or None (missing, unreadable or damaged)."""
        path = self._path(self.key(spec, settings))
        try:
            if self._fs is not None:
                data = self._fs.cat_file(path)
            else:
                with open(path, "rb") as f:
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
        if self._fs is not None:
            with source.errors(self.directory, "checkpoint cannot be written", StorageError,
                               StorageError):
                self._fs.pipe_file(path, data)  # one PUT: atomic on object storage
            self.stored += 1
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, data)
        self.stored += 1
