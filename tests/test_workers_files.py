"""workers/: the tuned distributed.yaml is valid Dask configuration that real worker and
scheduler processes pick up, and the Dockerfile builds this package, with its C extensions,
on a Python that pyproject allows."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import dask
import distributed
import pytest
import yaml
from cluster import dask_cluster
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ROOT / "workers"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCHEMA = yaml.safe_load((Path(distributed.__file__).parent / "distributed-schema.yaml")
                        .read_text())
CONFIG = yaml.safe_load((WORKERS / "distributed.yaml").read_text())
DOCKERFILE = (WORKERS / "Dockerfile").read_text()
TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
         "array": list, "object": dict, "null": type(None)}


def leaves(d: dict, path: tuple = ()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from leaves(v, (*path, k))
        else:
            yield (*path, k), v


def schema_node(path: tuple) -> dict:
    node = SCHEMA
    for k in path:
        if node.get("type") == "object" and "properties" not in node:
            return {}  # a mapping of free names (pre-spawn-environ: variable names)
        props = node.get("properties", {})
        assert k in props, f"{'.'.join(path)}: {k!r} is not in distributed's config schema"
        node = props[k]
    return node


def test_distributed_yaml_keys_are_in_the_schema() -> None:
    found = list(leaves(CONFIG))
    assert len(found) >= 10
    for path, value in found:
        node = schema_node(path)
        types = node.get("type")
        if types is not None:
            types = types if isinstance(types, list) else [types]
            assert isinstance(value, tuple(TYPES[t] for t in types)), (path, value, types)
    # the brief's settings are all there
    for key in ("scheduler.allowed-failures", "scheduler.work-stealing",
                "worker.memory.target", "worker.memory.spill", "worker.memory.pause",
                "worker.memory.terminate", "comm.timeouts.connect", "comm.timeouts.tcp"):
        assert ("distributed", *key.split(".")) in dict(found), key


def test_distributed_yaml_values_make_sense() -> None:
    from dask.utils import parse_timedelta

    merged = dask.config.merge(dask.config.config, CONFIG)
    with dask.config.set(merged):
        mem = dask.config.get("distributed.worker.memory")
        assert 0 < mem["target"] < mem["spill"] < mem["pause"] < mem["terminate"] < 1
        assert dask.config.get("distributed.scheduler.allowed-failures") >= 1
        for key in ("connect", "tcp"):
            assert parse_timedelta(dask.config.get(f"distributed.comm.timeouts.{key}")) >= 30
        # every preload is a module of this package that imports
        for mod in dask.config.get("distributed.worker.preload"):
            assert mod.startswith("streamlens_dist.")
            __import__(mod)


@pytest.mark.timeout(120)
def test_real_processes_pick_up_distributed_yaml() -> None:
    """DASK_CONFIG=workers/ as workers/README.md says: the scheduler and the workers run
    with the tuned settings (and the preloaded chunk task)."""
    def worker_view():
        import os
        import sys

        import dask
        return (dask.config.get("distributed.worker.memory.pause"),
                dask.config.get("distributed.comm.timeouts.tcp"),
                "streamlens_dist.chunktask" in sys.modules,
                os.environ.get("MALLOC_TRIM_THRESHOLD_"))

    def scheduler_view(dask_scheduler):
        return dask_scheduler.allowed_failures, dask.config.get(
            "distributed.scheduler.allowed-failures")

    with dask_cluster(1, env={"DASK_CONFIG": str(WORKERS)}) as cl, \
            distributed.Client(cl.address) as client:
        cfg = CONFIG["distributed"]
        (view,) = client.run(worker_view).values()
        # the nanny did not set dask's default MALLOC_TRIM_THRESHOLD_ (65536) for the worker
        assert view == (cfg["worker"]["memory"]["pause"], cfg["comm"]["timeouts"]["tcp"], True,
                        None)
        allowed = cfg["scheduler"]["allowed-failures"]
        assert client.run_on_scheduler(scheduler_view) == (allowed, allowed)
    assert allowed != 3  # not dask's default, or this test would prove nothing


def test_dockerfile_python_satisfies_requires_python() -> None:
    default = re.search(r"^ARG PYTHON_VERSION=(\S+)$", DOCKERFILE, re.M)
    assert default, "ARG PYTHON_VERSION=... missing"
    version = Version(default.group(1))
    assert version == Version("3.11")  # what the brief asks for: python:3.11-slim
    assert version in SpecifierSet(PYPROJECT["project"]["requires-python"])
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert froms and all(f == "python:${PYTHON_VERSION}-slim" for f in froms), froms


def test_dockerfile_builds_and_installs_this_package() -> None:
    # builds a wheel from the repository's own sources, installs it in the final image
    for copied in ("pyproject.toml", "streamlens_dist"):
        assert re.search(rf"^COPY .*\b{re.escape(copied)}\b", DOCKERFILE, re.M), copied
    assert re.search(r"^RUN pip wheel .*--wheel-dir /wheels \.$", DOCKERFILE, re.M)
    assert "COPY --from=build /wheels" in DOCKERFILE
    # with the s3 extra: workers read s3:// captures themselves (capture/source.py)
    assert re.search(r'pip install [^\n]*\n\s+"\$\(echo /tmp/wheels/\*\.whl\)\[s3\]"', DOCKERFILE)
    assert "s3" in PYPROJECT["project"]["optional-dependencies"]
    # a C compiler in the build stage, and the build fails unless every C extension of
    # pyproject was compiled
    assert "gcc" in DOCKERFILE
    exts = {e["name"] for e in PYPROJECT["tool"]["setuptools"]["ext-modules"]}
    imported = re.search(r'python -c "import ([^"]+)"', DOCKERFILE.replace("\\\n", ""))
    assert imported and {m.strip() for m in imported.group(1).split(",")} == exts
    # the tuned config goes where Dask looks for it; tshark is not installed
    assert "/etc/dask/distributed.yaml" in DOCKERFILE
    assert "tshark" not in re.sub(r"#.*", "", DOCKERFILE)
    assert re.search(r'^CMD \["dask", "worker", "--nthreads", "1"\]$', DOCKERFILE, re.M)
    # what the Dockerfile copies passes its .dockerignore
    ignore = (WORKERS / "Dockerfile.dockerignore").read_text()
    for kept in ("pyproject.toml", "README.md", "streamlens_dist/", "workers/distributed.yaml"):
        assert f"!{kept}" in ignore, kept


def test_readme_matches_the_files() -> None:
    readme = (WORKERS / "README.md").read_text()
    tag = f"streamlens-dist-worker:{PYPROJECT['project']['version']}"
    assert f"docker build -f workers/Dockerfile -t {tag} ." in readme
    assert "DASK_CONFIG" in readme and "distributed.yaml" in readme
    assert f"streamlens-dist=={PYPROJECT['project']['version']}" in readme
    assert os.path.exists(WORKERS / "Dockerfile.dockerignore")
