"""Where bytes come from and go to when a path is an fsspec URL (`s3://bucket/flight/*.pcapng`,
`gs://`, `abfs://`, `http(s)://`, ...), as opposed to a local or shared-filesystem path.

Chunk tasks read exactly their byte range (`read_range`: one ranged GET on object storage); the
splitter reads a remote file once, from a local temporary copy a worker streams (`fetch`).
`storage` is fsspec's keyword arguments for the filesystem (endpoint, credentials...); fsspec's
own configuration (`FSSPEC_S3_ENDPOINT_URL`-style variables, ~/.config/fsspec) and the usual
credential chains (AWS_* variables, instance roles) apply as well. Every failure becomes one of
our errors with the URL and the reason, never a library traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ..errors import CaptureNotFoundError, CaptureReadError, StreamlensError

Storage = dict[str, Any]


def is_url(path: str | os.PathLike) -> bool:
    """True for `proto://...` other than `file://` (local paths go through the OS directly)."""
    proto, sep, _rest = os.fspath(path).partition("://")
    return bool(sep) and proto.replace("+", "").replace("-", "").isalnum() and proto != "file"


def local_path(path: str | os.PathLike) -> str:
    """`file:///x` -> `/x`; any other path unchanged."""
    s = os.fspath(path)
    return s[len("file://"):] if s.startswith("file://") else s


def protocol(url: str) -> str:
    return url.partition("://")[0]


def filesystem(url: str, storage: Storage | None = None,
               error: type[Exception] = CaptureReadError) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for `url`."""
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(url, **(storage or {}))
    except ImportError as exc:  # fsspec names the package to install, e.g. "Install s3fs"
        raise error(f"{url}: cannot use {protocol(url)}:// URLs here ({exc}); "
                    "`pip install 'streamlens-dist[s3]'` installs s3fs") from exc
    except (ValueError, TypeError) as exc:
        raise error(f"{url}: {exc}") from exc


@contextlib.contextmanager
def errors(url: str, what: str = "cannot be read", error: type[Exception] = CaptureReadError,
           missing: type[Exception] = CaptureNotFoundError) -> Iterator[None]:
    """Translate whatever the filesystem raises into `missing` (not found) or `error`."""
    try:
        yield
    except StreamlensError:
        raise
    except FileNotFoundError as exc:
        raise missing(f"not found: {url}") from exc
    except PermissionError as exc:
        raise error(f"{url}: {what} (access denied: {_reason(exc)})") from exc
    except Exception as exc:  # botocore, aiohttp, HTTP errors: no common base class
        raise error(f"{url}: {what} ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def expand(url: str, storage: Storage | None = None) -> list[str]:
    """One URL or URL glob -> the object URLs it names (a glob's matches sorted by name)."""
    import glob

    fs, path = filesystem(url, storage)
    with errors(url, "cannot be listed"):
        if glob.has_magic(path):
            found = sorted(p for p, info in fs.glob(path, detail=True).items()
                           if info.get("type") != "directory")
            if not found:
                raise CaptureNotFoundError(f"no capture file matches the glob {url!r}")
            return [fs.unstrip_protocol(p) for p in found]
        info = fs.info(path)
    if info.get("type") == "directory":
        raise CaptureReadError(f"{url} is a directory (a prefix): give capture files or a "
                               f"glob such as '{url.rstrip('/')}/*.pcapng'")
    return [url]


def size(url: str, storage: Storage | None = None) -> int:
    fs, path = filesystem(url, storage)
    with errors(url):
        return int(fs.size(path))


def identity(url: str, storage: Storage | None = None) -> list:
    """What changes when the object changes: URL, size and the ETag or modification time."""
    fs, path = filesystem(url, storage)
    with errors(url):
        info = fs.info(path)
    version = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "LastModified", "mtime",
                                           "last_modified", "updated") if info.get(k)), "")
    return [url, int(info.get("size") or 0), version]


def read_range(url: str, start: int, end: int, storage: Storage | None = None) -> bytes:
    """Bytes [start, end) of the object: one ranged read, never the whole object."""
    if end <= start:
        return b""
    fs, path = filesystem(url, storage)
    with errors(url):
        return fs.cat_file(path, start=start, end=end)


def fetch(url: str, local: str, storage: Storage | None = None) -> None:
    """Stream the whole object into the local file `local` (bounded memory)."""
    fs, path = filesystem(url, storage)
    with errors(url):
        fs.get_file(path, local)
