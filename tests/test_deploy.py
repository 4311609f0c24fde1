"""deploy/ recipes agree with the package: every YAML parses, every Python recipe compiles,
image names carry pyproject's version, ports are 8786 (scheduler) and 8787 (dashboard)
everywhere, and every command line quoted in the READMEs parses with the real CLI (and the
`dask scheduler`/`dask worker` options used exist)."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import click
import pytest
import yaml

from streamlens_dist import __version__
from streamlens_dist.cli import analyze as _registers_analyze  # noqa: F401
from streamlens_dist.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"streamlens-dist-worker:{VERSION}"
SCHEDULER_PORT, DASHBOARD_PORT = 8786, 8787
READMES = sorted(DEPLOY.rglob("README.md"))
YAMLS = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
SCRIPTS = sorted(DEPLOY.rglob("*.py"))


def yaml_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_recipes_exist_and_parse() -> None:
    assert __version__ == VERSION
    for d in ("compose", "kubernetes", "hpc"):
        assert (DEPLOY / d / "README.md").is_file(), d
        assert f"({d}/README.md)" in (DEPLOY / "README.md").read_text(), f"index misses {d}"
    assert len(YAMLS) >= 2 and len(SCRIPTS) >= 1
    for path in YAMLS:
        assert yaml_docs(path), path
    for path in SCRIPTS:
        tree = compile(path.read_text(), str(path), "exec", flags=ast.PyCF_ONLY_AST)
        compile(tree, str(path), "exec")
        assert ast.get_docstring(tree), path


# --- images and ports ----------------------------------------------------------------------

def images(node) -> list[str]:
    """Every `image:` value in a YAML tree."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "image"] + \
            [i for v in node.values() for i in images(v)]
    if isinstance(node, list):
        return [i for v in node for i in images(v)]
    return []


def test_image_names_carry_the_package_version() -> None:
    found = [i for p in YAMLS for d in yaml_docs(p) for i in images(d)]
    assert found and set(found) == {IMAGE}, found
    for path in [*READMES, ROOT / "README.md"]:
        for tag in re.findall(r"streamlens-dist-worker:([\w.+-]+)", path.read_text()):
            assert tag == VERSION, f"{path}: streamlens-dist-worker:{tag}"
        for pin in re.findall(r"streamlens-dist==([\w.+-]+)", path.read_text()):
            assert pin == VERSION, f"{path}: streamlens-dist=={pin}"


def test_compose_recipe() -> None:
    (c,) = yaml_docs(DEPLOY / "compose" / "compose.yaml")
    sched, worker = c["services"]["scheduler"], c["services"]["worker"]
    for svc in (sched, worker):
        build = svc["build"]
        context = (DEPLOY / "compose" / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == ROOT / "workers" / "Dockerfile"
        assert svc["image"] == IMAGE
    assert sorted(sched["ports"]) == [f"{SCHEDULER_PORT}:{SCHEDULER_PORT}",
                                      f"{DASHBOARD_PORT}:{DASHBOARD_PORT}"]
    cmd = sched["command"]
    assert cmd[:2] == ["dask", "scheduler"]
    assert cmd[cmd.index("--port") + 1] == str(SCHEDULER_PORT)
    assert cmd[cmd.index("--dashboard-address") + 1] == f":{DASHBOARD_PORT}"
    assert f"{DASHBOARD_PORT}/health" in " ".join(sched["healthcheck"]["test"])
    assert worker["command"][:3] == ["dask", "worker", f"tcp://scheduler:{SCHEDULER_PORT}"]
    assert worker["deploy"]["replicas"] >= 1
    check_dask_options(sched["command"])
    check_dask_options(worker["command"])


def test_kubernetes_recipe() -> None:
    docs = yaml_docs(DEPLOY / "kubernetes" / "daskcluster.yaml")
    (dc,) = [d for d in docs if d["kind"] == "DaskCluster"]
    assert dc["apiVersion"] == "kubernetes.dask.org/v1"
    name = dc["metadata"]["name"]
    spec = dc["spec"]
    (sc,) = spec["scheduler"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in sc["ports"]}
    assert ports == {"tcp-comm": SCHEDULER_PORT, "http-dashboard": DASHBOARD_PORT}
    args = sc["args"]
    assert args[args.index("--port") + 1] == str(SCHEDULER_PORT)
    assert args[args.index("--dashboard-address") + 1] == f":{DASHBOARD_PORT}"
    service = spec["scheduler"]["service"]
    assert {p["name"]: p["port"] for p in service["ports"]} == ports
    assert {p["targetPort"] for p in service["ports"]} == set(ports)
    assert service["selector"]["dask.org/cluster-name"] == name
    (wc,) = spec["worker"]["spec"]["containers"]
    assert spec["worker"]["replicas"] >= 1
    check_dask_options(sc["args"])
    check_dask_options(wc["args"])
    # the volume claim both mount exists in the recipe
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for part in (spec["scheduler"], spec["worker"]):
        for v in part["spec"]["volumes"]:
            assert v["persistentVolumeClaim"]["claimName"] in claims
    readme = (DEPLOY / "kubernetes" / "README.md").read_text()
    assert f"{name}-scheduler:{SCHEDULER_PORT}" in readme


def constants(tree: ast.AST) -> dict[str, object]:
    """Module-level NAME = constant assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value.value
    return out


def test_hpc_recipe() -> None:
    path = DEPLOY / "hpc" / "jobqueue_cluster.py"
    tree = ast.parse(path.read_text())
    assert constants(tree) == {"SCHEDULER_PORT": SCHEDULER_PORT, "DASHBOARD_PORT": DASHBOARD_PORT}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert any(n.module == "dask_jobqueue" and
               sorted(a.name for a in n.names) == ["PBSCluster", "SLURMCluster"] for n in imports)
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Name) and n.func.id == "cluster_class"]
    kw = {k.arg for k in call.keywords}
    assert {"cores", "processes", "memory", "scheduler_options"} <= kw
    assert "scheduler_address" in path.read_text()
    # runs as a script: --help works without dask_jobqueue (imported after argument parsing)
    r = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--jobs" in r.stdout and "slurm" in r.stdout, r.stderr



@pytest.mark.timeout(120)
def test_hpc_jobs_use_the_tuned_dask_config() -> None:
    """The batch jobs' workers and the scheduler on the login node read workers/
    distributed.yaml (DASK_CONFIG), or what --dask-config names."""
    path = DEPLOY / "hpc" / "jobqueue_cluster.py"
    # the script, then what the Dask config of its process (the scheduler's) says
    code = (f"import runpy, sys; sys.argv[0] = {str(path)!r}; "
            "runpy.run_path(sys.argv[0], run_name='__main__'); import dask; "
            "print('allowed-failures', dask.config.get('distributed.scheduler.allowed-failures'))")
    env = {k: v for k, v in os.environ.items() if k != "DASK_CONFIG"}
    workers = ROOT / "workers"
    files = sorted(workers.iterdir())
    for system in ("slurm", "pbs"):
        r = subprocess.run([sys.executable, "-c", code, "--system", system, "--dry-run"],
                           capture_output=True, text=True, timeout=100, env=env)
        assert r.returncode == 0, r.stderr
        assert sorted(workers.iterdir()) == files  # nothing written there (jobqueue.yaml)
        script = r.stdout.split("allowed-failures")[0]
        lines = script.splitlines()
        export = lines.index(f"export DASK_CONFIG={workers}")
        assert export < next(i for i, ln in enumerate(lines) if "dask_worker" in ln)
        tuned = yaml.safe_load((workers / "distributed.yaml").read_text())
        assert r.stdout.split()[-1] == str(tuned["distributed"]["scheduler"]["allowed-failures"])
    r = subprocess.run([sys.executable, str(path), "--system", "slurm", "--dry-run",
                        "--dask-config", str(DEPLOY)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and "no distributed.yaml there" in r.stderr

def test_ports_in_readmes() -> None:
    for path in [*READMES, ROOT / "README.md"]:
        text = path.read_text()
        for port in re.findall(r"\b(?:tcp|tls)://[\w.-]+:(\d+)", text):
            assert port in (str(SCHEDULER_PORT), "PORT"), f"{path}: scheduler port {port}"
        # every http URL is the dashboard, but an object store's endpoint_url (S3/MinIO)
        for port in re.findall(r'(?<!endpoint_url": ")\bhttps?://[\w.-]+:(\d+)', text):
            assert port == str(DASHBOARD_PORT), f"{path}: dashboard port {port}"
        for a, b in re.findall(r"port-forward \S+ (\d+):(\d+)", text):
            assert a == b and int(a) in (SCHEDULER_PORT, DASHBOARD_PORT), path


# --- command lines -------------------------------------------------------------------------

def command_lines(text: str, command: str) -> list[list[str]]:
    """Each `command ...` in the code lines (indented blocks and `...` spans) of a README,
    backslash continuations joined, as argument lists after `command`."""
    text = text.replace("\\\n", " ")
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = [ln for ln in text.splitlines() if ln.startswith("    ")]
    spans += [ln for block in fenced for ln in block.splitlines()]
    spans += [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", text)]
    out = []
    for span in spans:
        for m in re.finditer(rf"(?:^|[\s/]){re.escape(command)}\s(.*)", span):
            rest = re.split(r"\s(?:#|&&|\||;)\s?", m.group(1))[0]
            out.append(shlex.split(rest.rstrip(" &")))
    return out


def test_streamlens_command_lines_parse_with_the_cli() -> None:
    seen = 0
    for path in [*READMES, ROOT / "README.md"]:
        for args in command_lines(path.read_text(), "streamlens-dist"):
            if args[0] != "analyze" or any(a.endswith("...") for a in args):
                continue  # prose: "streamlens-dist analyze CAPTURE... -o STORE", "analyze ... -q"
            sub = cli.get_command(click.Context(cli), args[0])
            try:
                sub.make_context(args[0], args[1:])
            except click.ClickException as exc:
                pytest.fail(f"{path}: streamlens-dist {shlex.join(args)}: {exc.format_message()}")
            seen += 1
            print(path.relative_to(ROOT), shlex.join(args))
    assert seen >= 5, seen


@cache
def dask_options(command: str) -> frozenset[str]:
    r = subprocess.run([str(Path(sys.executable).parent / "dask"), command, "--help"],
                       capture_output=True, text=True, timeout=60, check=True)
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", r.stdout))


def check_dask_options(argv: list[str]) -> None:
    assert argv[0] == "dask" and argv[1] in ("scheduler", "worker"), argv
    for a in argv[2:]:
        if a.startswith("--"):
            assert a.split("=")[0] in dask_options(argv[1]), f"dask {argv[1]} has no {a}"


def test_dask_command_lines_in_readmes() -> None:
    seen = 0
    for path in [*READMES, ROOT / "README.md"]:
        for command in ("scheduler", "worker"):
            for args in command_lines(path.read_text(), f"dask {command}"):
                check_dask_options(["dask", command, *[a for a in args if a != "..."]])
                print(path.relative_to(ROOT), command, shlex.join(args))
                seen += 1
    assert seen >= 3, seen
