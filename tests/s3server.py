"""A real S3-compatible server (moto's server mode) as a separate process on loopback."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from cluster import free_port

# moto accepts any credentials; these only have to be present and consistent
KEY, SECRET = "streamlens-test", "streamlens-test-secret"


@contextmanager
def s3_server(timeout: float = 30.0) -> Iterator[str]:
    """Start `python -m moto.server` on 127.0.0.1; yield its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # The server logs every request: to a file, as a pipe nobody reads would fill up and
    # stall the server after a few hundred requests.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                 str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_it_answers(endpoint, proc, log, timeout)
            yield endpoint
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _wait_until_it_answers(endpoint: str, proc: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even an error, means it is up
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("moto server exited: "
                                   + log.read().decode(errors="replace")) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def storage_options(endpoint: str) -> dict:
    """fsspec/s3fs options for the test server (no caching of listings between writes)."""
    return {"endpoint_url": endpoint, "key": KEY, "secret": SECRET, "use_listings_cache": False}
