"""Mutual TLS (README "Command line", TLS): a real `dask scheduler --protocol tls` and two TLS
`dask worker`s, certificates made by the test with the `openssl` CLI.

The CLI with the certificates (options, or dask's own config) gives the serial run's store;
a client without a certificate, or with one from another CA, is refused by the scheduler,
and the CLI says so in one line without writing anything.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import BIN, free_port, stop_processes
from conftest import CAPTURES, assert_tables_equal
from storeio import load_store

from streamlens_dist import analyze
from streamlens_dist.errors import SettingsError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

CLI = str(Path(sys.executable).parent / "streamlens-dist")
CAPTURE = CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d: Path, name: str, ca: str) -> None:
    """A certificate for `name` signed by `ca`, good for both ends of a TLS connection."""
    openssl("req", "-x509", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "extendedKeyUsage=serverAuth,clientAuth", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca/ node (the cluster's processes) / client, all signed by ca; rogue signed by other."""
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_leaf(d, "node", "ca")
    make_leaf(d, "client", "ca")
    make_ca(d, "other")
    make_leaf(d, "rogue", "other")
    return d


def tls_args(d: Path, who: str, ca: str = "ca") -> list[str]:
    return ["--tls-ca-file", str(d / f"{ca}.pem"), "--tls-cert", str(d / f"{who}.pem"),
            "--tls-key", str(d / f"{who}.key")]


@pytest.fixture(scope="module")
def tls_scheduler(pki: Path) -> Iterator[str]:
    """`dask scheduler --protocol tls` and two TLS `dask worker`s; yields tls://127.0.0.1:PORT."""
    from distributed import Client
    from distributed.security import Security

    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    node = tls_args(pki, "node")
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--protocol", "tls", "--host",
                               "127.0.0.1", "--port", str(port), "--no-dashboard", *node],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--protocol", "tls", "--host", "127.0.0.1",
                 "--nthreads", "1", "--no-dashboard", *node],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        sec = Security(tls_ca_file=str(pki / "ca.pem"), tls_client_cert=str(pki / "client.pem"),
                       tls_client_key=str(pki / "client.key"), require_encryption=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, security=sec, timeout="5s") as c:
                    c.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        stop_processes(procs[::-1])


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DASK_DISTRIBUTED__COMM", "DASK_SCHEDULER_ADDRESS"))}
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**base, **(env or {})})


def handshake(address: str, pki: Path, who: str | None) -> bytes:
    """Open a raw TLS connection to `address` trusting ca.pem, presenting `who`'s certificate
    (None: none), and read the first bytes the scheduler sends once it accepted the client
    (dask's own comm handshake). Raises ssl.SSLError when the scheduler refuses the client."""
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False
    if who:
        ctx.load_cert_chain(str(pki / f"{who}.pem"), str(pki / f"{who}.key"))
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as s:
        s.settimeout(5)
        return s.recv(1)  # TLS 1.3: the server's verdict on our certificate arrives here


def test_cli_over_tls_equals_serial(tls_scheduler: str, pki: Path, tmp_path: Path) -> None:
    remote, serial = tmp_path / "tls.zarr", tmp_path / "serial.zarr"
    r = run_cli("analyze", str(CAPTURE), "-o", str(remote), "--chunk-size", "8KiB", "--json",
                "--scheduler", tls_scheduler, *tls_args(pki, "client"))
    assert r.returncode == 0, r.stderr
    assert '"chunks": 1,' not in r.stdout  # really spread over the cluster
    r = run_cli("analyze", str(CAPTURE), "-o", str(serial), "--serial", "-q")
    assert r.returncode == 0, r.stderr
    (t_remote, a_remote), (t_serial, a_serial) = load_store(remote), load_store(serial)
    assert_tables_equal(t_remote, t_serial, where="tls vs serial")
    assert a_remote == a_serial
    assert len(t_remote["flow_outliers"]["frame"]) > 0


def test_tls_from_dask_config(tls_scheduler: str, pki: Path, tmp_path: Path) -> None:
    """No --tls-* options: the certificates come from dask's config (environment variables),
    the scheduler from DASK_SCHEDULER_ADDRESS."""
    store = tmp_path / "env.zarr"
    r = run_cli("analyze", str(CAPTURES / "ptpv2_l2_ethertype88f7.pcap"), "-o", str(store),
                "--chunk-size", "2KiB", "--json",
                env={"DASK_SCHEDULER_ADDRESS": tls_scheduler,
                     "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(pki / "ca.pem"),
                     "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(pki / "client.pem"),
                     "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(pki / "client.key")})
    assert r.returncode == 0, r.stderr
    assert '"frames": 205' in r.stdout
    assert store.exists()


def test_api_tls_argument(tls_scheduler: str, pki: Path, tmp_path: Path) -> None:
    s = analyze(CAPTURE, tmp_path / "api.zarr", chunk_size="16KiB", scheduler=tls_scheduler,
                tls=(pki / "ca.pem", pki / "client.pem", pki / "client.key"))
    assert s.chunks > 1 and s.frames > 0
    assert "cluster_start" in s.phases


def test_client_without_certificate_is_refused(tls_scheduler: str, pki: Path,
                                               tmp_path: Path) -> None:
    # the scheduler itself refuses a TLS client that presents no certificate...
    assert handshake(tls_scheduler, pki, "client") != b""  # control: accepted, talks
    with pytest.raises(ssl.SSLError, match="(?i)certificate"):
        handshake(tls_scheduler, pki, None)
    # ...and the CLI, given no certificate for a tls:// scheduler, says what to pass
    store = tmp_path / "x.zarr"
    r = run_cli("analyze", str(CAPTURE), "-o", str(store), "--scheduler", tls_scheduler)
    assert r.returncode == 1, r.stderr
    assert "uses TLS but no client certificate was given" in r.stderr
    assert "--tls-ca-file" in r.stderr
    assert "Traceback" not in r.stderr
    assert not store.exists()


def test_certificate_from_another_ca_is_refused(tls_scheduler: str, pki: Path,
                                                tmp_path: Path) -> None:
    with pytest.raises(ssl.SSLError, match="(?i)unknown ca|certificate"):
        handshake(tls_scheduler, pki, "rogue")
    store = tmp_path / "x.zarr"
    # the rogue certificate, with the right CA file (so that only the client side is wrong)
    r = run_cli("analyze", str(CAPTURE), "-o", str(store), "--chunk-size", "8KiB",
                "--scheduler", tls_scheduler, "--tls-ca-file", str(pki / "ca.pem"),
                "--tls-cert", str(pki / "rogue.pem"), "--tls-key", str(pki / "rogue.key"))
    assert r.returncode == 1, r.stderr
    assert f"cannot reach the Dask scheduler at {tls_scheduler}" in r.stderr
    assert "TLS handshake was refused" in r.stderr and "rogue.pem" in r.stderr
    assert "Traceback" not in r.stderr
    assert not store.exists()


def test_certificate_files_are_checked_first(pki: Path, tmp_path: Path) -> None:
    """Unusable TLS settings fail before anything is read or started, naming the fix."""
    ca, cert, key = pki / "ca.pem", pki / "client.pem", pki / "client.key"
    store = tmp_path / "x.zarr"
    cases = [
        ((tmp_path / "missing.pem", cert, key), "tls://127.0.0.1:1", "does not exist"),
        ((ca, cert, tmp_path), "tls://127.0.0.1:1", "is not a file"),
        ((ca, CAPTURE, key), "tls://127.0.0.1:1", "is not a PEM file"),
        ((ca, None, None), "tls://127.0.0.1:1", "CA file and a client certificate together"),
        ((ca, cert, key), "tcp://127.0.0.1:1", "is not tls://"),
        ((ca, cert, key), None, "local cluster listens on loopback only"),
    ]
    for tls, scheduler, message in cases:
        with pytest.raises(SettingsError, match=message):
            analyze(CAPTURE, store, scheduler=scheduler, tls=tls, chunk_size="8KiB")
    if os.geteuid() != 0:
        unreadable = tmp_path / "unreadable.key"
        unreadable.write_bytes(key.read_bytes())
        unreadable.chmod(0)
        with pytest.raises(SettingsError, match="cannot be read"):
            analyze(CAPTURE, store, scheduler="tls://127.0.0.1:1", tls=(ca, cert, unreadable))
    # the same through the command line: exit 1, one line, nothing written
    r = run_cli("analyze", str(CAPTURE), "-o", str(store), "--scheduler", "tls://127.0.0.1:1",
                "--tls-ca-file", str(tmp_path / "missing.pem"), "--tls-cert", str(cert))
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: TLS CA file {tmp_path / 'missing.pem'} does not exist"
    assert not store.exists()
