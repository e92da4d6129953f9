#!/usr/bin/env python3
"""Start the local one-node SLURM cluster and write profiles/slurm adapted to it.

The rehearsal's SLURM stage runs the real workflow through the real profile
(``profiles/slurm/config.yaml``) on the one-node cluster of ``tools/slurm/local-cluster.sh``
(installed from Debian's packages, daemons started by hand; needs root). This reuses the test
suite's helpers (``tests/slurm_cluster.py``): ``start_cluster`` (a healthy running cluster is
reused) and ``escalating_profile_for_local_cluster``, which copies the profile and changes only
what the one small node needs (memory caps, threads, status polling), keeping the executor,
partitions, rule names and the retry escalation. The larger GPU tiers (``large_gpu_model``,
``retry_large_gpu_model``) are set to the node's one GPU type, so that a retried job (attempt 2)
can be placed; ``--keep-gpu-tiers`` keeps the profile's names.

Use (as root)::

    .venv/bin/python tools/rehearsal/slurm_profile.py --out /tmp/rehearsal/profile [--retries 1]
    HF_HOME=... HF_HUB_OFFLINE=1 EXPERTALIGN_ALLOW_NO_GPU=1 \\
        .venv/bin/snakemake --profile /tmp/rehearsal/profile --configfile <toy.yaml>

``EXPERTALIGN_ALLOW_NO_GPU=1``: the local cluster's GPUs are fake (``/dev/fakegpu*``) and torch
is a CPU build; without it the GPU rules stop with NoGPUError, as they should on a real node.
``--stop`` stops the daemons (only when this script's cluster is running).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="folder for the adapted profile (config.yaml)")
    ap.add_argument("--retries", type=int, default=1, help="the profile's retries (real: 1)")
    ap.add_argument("--stop", action="store_true", help="stop the local cluster's daemons")
    ap.add_argument(
        "--keep-gpu-tiers",
        action="store_true",
        help="keep the profile's large_gpu_model / retry_large_gpu_model (a100_80gb): a retry "
        "then asks for a card the one-node cluster lacks and sbatch refuses it",
    )
    ap.add_argument(
        "--squeeze",
        metavar="RULE=MB",
        action="append",
        default=[],
        help="give RULE mem_mb 'MB * attempt' (the profile's own escalation): the rehearsal's "
        "memory drill, a job killed for memory on attempt 1 that passes on attempt 2",
    )
    args = ap.parse_args(argv)

    import slurm_cluster
    import yaml

    if args.stop:
        slurm_cluster._run(["bash", str(slurm_cluster.SCRIPT), "stop"], timeout=120)
        return 0
    if args.out is None:
        ap.error("--out is required (unless --stop)")
    reason = slurm_cluster._skip_reason()
    if reason:
        print(f"the local SLURM cluster cannot start here: {reason}", file=sys.stderr)
        return 2
    cluster = slurm_cluster.start_cluster()
    # The node has one GPU type; the profile's retry tier (a100_80gb) is not on it. Without this
    # mapping a retried GPU job (attempt 2) fails at submission: "sbatch: error: Batch job
    # submission failed: Requested node configuration is not available" (seen in the rehearsal).
    site = (
        None
        if args.keep_gpu_tiers
        else {"large_gpu_model": cluster.gpu_type, "retry_large_gpu_model": cluster.gpu_type}
    )
    profile = slurm_cluster.escalating_profile_for_local_cluster(
        args.out, cluster, site=site, retries=args.retries
    )
    if args.squeeze:
        config = yaml.safe_load((profile / "config.yaml").read_text())
        for item in args.squeeze:
            rule, _, mb = item.partition("=")
            if not mb.isdigit():
                ap.error(f"--squeeze {item!r}: expected RULE=MB")
            config.setdefault("set-resources", {}).setdefault(rule, {})["mem_mb"] = (
                f"{mb} * attempt"
            )
        (profile / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(
        json.dumps(
            {
                "profile": str(profile),
                "squeezed": args.squeeze,
                "node": cluster.node,
                "cpus": cluster.cpus,
                "mem_mb": cluster.mem_mb,
                "gpus": f"{cluster.n_gpus} x {cluster.gpu_type}",
                "partitions": cluster.partitions,
                "timings": cluster.timings,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
