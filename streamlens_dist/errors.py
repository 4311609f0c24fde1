"""One error hierarchy for broken program inputs.

Each class also inherits the matching builtin so callers can catch either. Malformed traffic
inside a valid capture is *data* (counted, reported), never one of these exceptions.
"""

from __future__ import annotations


class StreamlensError(Exception):
    """Base class of every error streamlens-dist raises on purpose."""


class CaptureNotFoundError(StreamlensError, FileNotFoundError):
    """A capture path or glob matched no file."""


class CaptureFormatError(StreamlensError, ValueError):
    """A file is not a pcap/pcapng capture, or its header is unusable."""


class CaptureReadError(StreamlensError, OSError):
    """A capture file exists but cannot be read (permissions, I/O error, not a regular file)."""


class SettingsError(StreamlensError, ValueError):
    """An option value is invalid (sigma, chunk size, worker count...)."""


class StoreExistsError(StreamlensError, FileExistsError):
    """The result store already exists and --overwrite was not given."""


class OutputRefusedError(StreamlensError, FileExistsError):
    """Writing there would replace or delete something that is not our own output: an input,
    a file, a directory that is not a result store (only our own stores are ever replaced)."""


class StorageError(StreamlensError, OSError):
    """A result store or checkpoint location (a path or an fsspec URL) cannot be written or read."""


class WireFormatError(StreamlensError, ValueError):
    """A serialised partial is not one this version understands."""


class ClusterError(StreamlensError, RuntimeError):
    """The Dask scheduler could not be reached or was lost."""


class WorkerVersionError(ClusterError):
    """A Dask worker runs different streamlens-dist/dpkt/msgpack/numpy versions than the client."""
