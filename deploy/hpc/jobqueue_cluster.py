"""A streamlens-dist Dask cluster on SLURM or PBS with dask-jobqueue (deploy/hpc/README.md).

Run on a login node, in the same Python environment the compute nodes see (a shared
filesystem): it starts the scheduler here (port 8786, dashboard 8787), submits JOBS batch jobs
of worker processes, prints the scheduler address and keeps the cluster up until Ctrl-C.

    python deploy/hpc/jobqueue_cluster.py --system slurm --jobs 4 --queue compute --account flighttest
    python deploy/hpc/jobqueue_cluster.py --system pbs --jobs 4 --queue workq
    streamlens-dist analyze /shared/flight-042/*.pcapng -o /shared/flight-042.zarr \\
        --scheduler tcp://LOGIN_NODE:8786

`--dry-run` prints the job script instead of submitting anything.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
# this checkout's tuned Dask settings (workers/README.md); on the shared filesystem, the
# compute nodes read them too
TUNED_CONFIG = Path(__file__).resolve().parents[2] / "workers"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=("slurm", "pbs"), required=True,
                   help="the batch scheduler of the site")
    p.add_argument("--jobs", type=int, default=2, help="batch jobs (nodes) to submit")
    p.add_argument("--cores", type=int, default=16, help="cores per job")
    p.add_argument("--memory", default="64GiB", help="memory per job")
    p.add_argument("--walltime", default="02:00:00")
    p.add_argument("--queue", default=None, help="SLURM partition / PBS queue")
    p.add_argument("--account", default=None)
    p.add_argument("--interface", default=None,
                   help="network interface the nodes reach each other on (e.g. ib0)")
    p.add_argument("--dask-config", default=str(TUNED_CONFIG), metavar="DIR",
                   help="directory of the distributed.yaml the scheduler and the workers read "
                        "(DASK_CONFIG; default: this checkout's workers/); the compute nodes "
                        "must see it at the same path")
    p.add_argument("--dry-run", action="store_true", help="print the job script and exit")
    args = p.parse_args(argv)
    config = Path(args.dask_config).resolve()
    if not (config / "distributed.yaml").is_file():
        p.error(f"--dask-config {config}: no distributed.yaml there")
    # The scheduler started here reads the file's settings (loaded before distributed is
    # imported, so distributed's defaults do not override them); the workers' job script
    # exports DASK_CONFIG itself (PBS jobs do not inherit this environment). Not DASK_CONFIG
    # here: dask_jobqueue would write its own jobqueue.yaml into that directory.
    import dask

    dask.config.update(dask.config.config, dask.config.collect([str(config)], env={}),
                       priority="new")

    from dask_jobqueue import PBSCluster, SLURMCluster

    cluster_class = SLURMCluster if args.system == "slurm" else PBSCluster
    cluster = cluster_class(
        cores=args.cores,
        processes=args.cores,  # one single-threaded worker process per core (workers/README.md)
        memory=args.memory,
        walltime=args.walltime,
        queue=args.queue,
        account=args.account,
        interface=args.interface,
        scheduler_options={"port": SCHEDULER_PORT, "dashboard_address": f":{DASHBOARD_PORT}"},
        job_name="streamlens-worker",
        job_script_prologue=[f"export DASK_CONFIG={shlex.quote(str(config))}"],
    )
    if args.dry_run:
        print(cluster.job_script())
        cluster.close()
        return
    cluster.scale(jobs=args.jobs)
    print(f"scheduler: {cluster.scheduler_address}")
    print(f"dashboard: {cluster.dashboard_link}")
    print(f"run: streamlens-dist analyze CAPTURE... -o STORE --scheduler {cluster.scheduler_address}")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
