"""A Dask worker plugin that refuses workers whose package versions differ from the client's.

The partials' wire format is versioned, but a different dpkt, msgpack or numpy could change
numbers without changing the format. The client registers `VersionCheck` (carrying its own
versions) before submitting any task; `setup` runs on every worker, now and when one joins
later. On a mismatch it raises (the registration fails, the client stops with a
`WorkerVersionError` naming the package, both versions and the worker), and the worker
remembers the refusal so that our tasks fail on it with the same message even when it joined
after the registration (Dask only logs a plugin failure of a joining worker).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from distributed import WorkerPlugin

from .errors import ClusterError, WorkerVersionError

PACKAGES = ("streamlens-dist", "dpkt", "msgpack", "numpy")
PLUGIN_NAME = "streamlens-dist-version-check"

# Set by VersionCheck.setup on a mismatch: every task on this worker process refuses to run.
_refusal: str | None = None


def installed_versions() -> dict[str, str]:
    """{package: version} of this Python environment for the packages that decide results."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_worker() -> None:
    """Called first by every task: raise if this worker failed the version check."""
    if _refusal is not None:
        raise WorkerVersionError(_refusal)


class VersionCheck(WorkerPlugin):
    """Carries the client's versions (or `versions`, for tests) to every worker."""

    name = PLUGIN_NAME
    # Not idempotent: every run re-registers it, so the check is made against *this* client
    # even when another client registered its versions before.
    idempotent = False

    def __init__(self, versions: Mapping[str, str] | None = None) -> None:
        self.versions = dict(installed_versions() if versions is None else versions)

    def setup(self, worker) -> None:
        global _refusal
        mine = installed_versions()
        diffs = [f"{p} {v} on the client but {mine.get(p, 'not installed')} on the worker"
                 for p, v in self.versions.items() if mine.get(p, "not installed") != v]
        if diffs:
            _refusal = (f"Dask worker {worker.address} refused: " + "; ".join(diffs)
                        + ". Install the client's versions on every worker (workers/README.md),"
                        " restart the workers and rerun")
            raise WorkerVersionError(_refusal)
        _refusal = None

    def teardown(self, worker) -> None:
        global _refusal
        _refusal = None


# The versions last registered through each client: registering again with the same ones is
# a no-op worth skipping (a scheduler round trip to every worker per analysis; a campaign runs
# thousands). Workers that join later get the registered plugin from the scheduler anyway.
_registered: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_version_check(client, plugin: VersionCheck | None = None) -> None:
    """Register `plugin` (default: this environment's versions) on all workers of `client`;
    a refusal or a worker that cannot load the plugin becomes a ClusterError."""
    default = plugin is None
    plugin = VersionCheck() if plugin is None else plugin
    if default and _registered.get(client) == plugin.versions:
        return
    _registered.pop(client, None)
    try:
        if hasattr(client, "register_plugin"):  # distributed >= 2023.9
            client.register_plugin(plugin, name=PLUGIN_NAME)
        else:
            client.register_worker_plugin(plugin, name=PLUGIN_NAME)
        _registered[client] = dict(plugin.versions)
    except WorkerVersionError:
        raise
    except Exception as exc:
        raise ClusterError(
            f"could not check the package versions of the Dask workers at "
            f"{client.scheduler.address} ({type(exc).__name__}: {exc}); install "
            f"streamlens-dist {plugin.versions.get('streamlens-dist')} and its dependencies on "
            "every worker (workers/README.md), restart the workers and rerun") from exc
