"""TLS with mutual certificates for the connection to a Dask scheduler (README "Command line").

Dask's `Client(address)` builds its `Security` from dask's config, so TLS needs no change to
the engine: `tls_for(...)` checks the certificate files and sets `distributed.comm.tls.*`
(and `require-encryption`) for the duration of a run. The same keys may come from dask's own
config instead (a `distributed.yaml`, or `DASK_DISTRIBUTED__COMM__TLS__CA_FILE`, ...).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .errors import ClusterError, SettingsError

CA_KEY = "distributed.comm.tls.ca-file"
CERT_KEY = "distributed.comm.tls.client.cert"
KEY_KEY = "distributed.comm.tls.client.key"
REQUIRE_KEY = "distributed.comm.require-encryption"


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a mutual-TLS client: the CA that signed the scheduler's certificate, and
    this client's certificate and private key (`key` None when `cert` holds the key too)."""

    ca_file: str
    cert: str
    key: str | None = None

    def config(self) -> dict[str, object]:
        cfg: dict[str, object] = {CA_KEY: self.ca_file, CERT_KEY: self.cert, REQUIRE_KEY: True}
        if self.key:
            cfg[KEY_KEY] = self.key
        return cfg


TLSArg = TLSFiles | Sequence[str | os.PathLike | None] | Mapping[str, str | os.PathLike | None] | None


def _readable(what: str, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SettingsError(f"{what} {path} does not exist")
    if not os.path.isfile(path):
        raise SettingsError(f"{what} {path} is not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise SettingsError(f"{what} {path} cannot be read ({exc.strerror or exc})") from exc
    if b"-----BEGIN" not in head:
        raise SettingsError(f"{what} {path} is not a PEM file (no -----BEGIN line)")
    return path


def tls_files(tls: TLSArg) -> TLSFiles | None:
    """`tls` as checked `TLSFiles`: None, a `TLSFiles`, `(ca_file, cert[, key])`, or a mapping
    with keys `ca_file`, `cert`, `key`. Every file must exist, be readable and be PEM."""
    if tls is None:
        return None
    if isinstance(tls, TLSFiles):
        ca, cert, key = tls.ca_file, tls.cert, tls.key
    elif isinstance(tls, Mapping):
        unknown = set(tls) - {"ca_file", "cert", "key"}
        if unknown:
            raise SettingsError(f"unknown TLS settings {sorted(unknown)}; use ca_file, cert, key")
        ca, cert, key = tls.get("ca_file"), tls.get("cert"), tls.get("key")
    elif isinstance(tls, Sequence) and not isinstance(tls, (str, bytes)) and len(tls) in (2, 3):
        ca, cert, key = (*tls, None)[:3]
    else:
        raise SettingsError("tls must be (ca_file, cert, key) PEM file paths")
    if not ca and not cert and not key:
        return None
    if not ca or not cert:
        raise SettingsError("TLS needs the CA file and a client certificate together "
                            "(--tls-ca-file CA --tls-cert CERT --tls-key KEY)")
    return TLSFiles(_readable("TLS CA file", ca), _readable("TLS certificate", cert),
                    _readable("TLS key", key) if key else None)


def _config_tls() -> TLSFiles | None:
    """The client certificates dask's own config names (checked like the options), if any."""
    import dask

    ca, cert, key = (dask.config.get(k, None) for k in (CA_KEY, CERT_KEY, KEY_KEY))
    if not ca and not cert:
        return None
    try:
        return tls_files((ca, cert, key))
    except SettingsError as exc:
        raise SettingsError(f"{exc} (from dask config {CA_KEY} / {CERT_KEY} / {KEY_KEY})") \
            from None


def check_tls(tls: TLSArg, address: str | None) -> TLSFiles | None:
    """The client certificates for a run on the scheduler at `address` (None: no scheduler:
    a local cluster, `serial`, or the caller's own client): `tls`, else those dask's config
    names when `address` is `tls://`. Raises SettingsError, before anything runs, when the
    files are unusable, are given without a `tls://` scheduler, or a `tls://` scheduler has
    none."""
    files = tls_files(tls)
    if files is not None and address is None:
        raise SettingsError("--tls-* options secure the connection to --scheduler tls://HOST:PORT; "
                            "the local cluster listens on loopback only and needs none")
    scheme = address.split("://", 1)[0].lower() if address and "://" in address else "tcp"
    if files is not None and scheme != "tls":
        raise SettingsError(f"TLS certificates were given but the scheduler address {address} "
                            "is not tls://; use tls://HOST:PORT")
    if files is None and scheme == "tls":
        files = _config_tls()
        if files is None:
            raise SettingsError(
                f"the scheduler {address} uses TLS but no client certificate was given: pass "
                "--tls-ca-file CA --tls-cert CERT --tls-key KEY (or set dask's "
                f"{CA_KEY}, {CERT_KEY} and {KEY_KEY})")
    return files


@contextlib.contextmanager
def tls_config(files: TLSFiles | None) -> Iterator[None]:
    """Dask config that makes `Client(address)` use `files` (nothing when None); a scheduler
    that cannot be reached becomes a ClusterError that names the certificates."""
    if files is None:
        yield
        return
    import dask

    try:
        with dask.config.set(files.config()):
            yield
    except ClusterError as exc:
        if not str(exc).startswith("cannot reach"):
            raise
        raise ClusterError(
            f"{exc}; with TLS this also means the TLS handshake was refused: check that "
            f"{files.cert} is signed by a CA the scheduler trusts and that {files.ca_file} "
            "signed the scheduler's certificate") from exc
