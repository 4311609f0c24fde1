"""What a capture is made of right now: its files' identities. A capture whose identity
differs from the one recorded when it was analysed is analysed again."""

from __future__ import annotations

import hashlib
import os

from ..capture import source
from ..capture.split import _BAD_INPUT, _expand

SAMPLE = 1 << 20  # bytes hashed at each end of a local file


def file_identity(path: str, storage: source.Storage | None = None) -> list:
    """[path, size, mtime or ETag, content hash]. Local files: mtime in ns and the SHA-256 of
    the first and last MiB with the size, so a rewrite that keeps size and mtime but changes
    the content at either end (where rotation and truncation act) is still seen, without
    reading whole archives on every run. URLs: the object's ETag (a content hash on S3)."""
    if source.is_url(path):
        url, size, version = source.identity(path, storage)
        return [url, size, version, ""]
    local = source.local_path(path)
    st = os.stat(local)
    h = hashlib.sha256(str(st.st_size).encode())
    with open(local, "rb") as f:
        h.update(f.read(SAMPLE))
        if st.st_size > SAMPLE:
            f.seek(max(SAMPLE, st.st_size - SAMPLE))
            h.update(f.read(SAMPLE))
    return [os.path.abspath(local), st.st_size, st.st_mtime_ns, h.hexdigest()]


def capture_identity(files: tuple[str, ...], storage: source.Storage | None = None) -> list:
    """Identities of every file the capture's paths and globs name now; a path that names
    nothing is recorded as such, so that its appearance later counts as a change."""
    out = []
    for p in files:
        try:
            names = _expand(p, storage)
        except _BAD_INPUT as exc:
            out.append([p, "unavailable", str(exc)])
            continue
        for name in names:
            try:
                out.append(file_identity(name, storage))
            except (OSError, *_BAD_INPUT) as exc:
                out.append([name, "unavailable", str(exc)])
    return out


def identity_bytes(identity: list) -> int:
    return sum(int(i[1]) for i in identity if isinstance(i[1], int))
