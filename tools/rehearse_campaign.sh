#!/usr/bin/env bash
# The rehearsal (project issue 19): config/paper.yaml's campaign shape at toy scale, with models
# loaded exactly as a cluster loads Pythia: by Hub name and `revision=`, with HF_HUB_OFFLINE=1,
# from a Hugging Face cache (HF_HOME) that this script builds offline.
#
#   tools/rehearse_campaign.sh [--work DIR] [--runner local|slurm] [--part one|all] [--faults]
#
# Stages (each prints a banner and its wall time; the first failure stops the script):
#   1 hub      tools/rehearsal/build_hub.py: $WORK/hf/hub with rehearsal/neox-small and
#              rehearsal/neox-large (tiny random GPT-NeoX, real module names), branches step1,
#              step512, step143000 and main (= step143000), each its own commit and weights, a
#              byte-level BPE tokenizer trained on Brown. Skipped when $WORK/hf/rehearsal_hub.json
#              exists (--rebuild-hub forces it).
#   2 verify   tools/rehearsal/verify_hub.py with HF_HUB_OFFLINE=1: load_model(name, revision=...)
#              gives each branch's saved weights; `expertalign prefetch NAME --revision B` passes.
#   3 config   tools/rehearsal/make_config.py: $WORK/config/rehearsal.yaml (150 concepts from
#              config/paper_concepts.tsv with >= 16 Brown sentences each, 2 models x 3 checkpoints
#              + 2 random-init twins, shards of 6 = 25 expert jobs per (model, checkpoint), 5
#              Brown sentence batches, SPP, pilot), results in $WORK/results.
#   4 plan     `snakemake -n` (job counts per rule) and `expertalign plan` for that config.
#   5 run      --runner local: profiles/local, --cores 2; --runner slurm: the local one-node SLURM
#              cluster (tools/slurm/local-cluster.sh, needs root) with profiles/slurm adapted by
#              tools/rehearsal/slurm_profile.py. --part one: only the 25 expert shards of
#              neox-small@step512 (and what they need); --part all: the whole campaign.
#   6 faults   (--faults, needs --runner slurm and --part all) the campaign's failure drills:
#              6a scancel one running expert job; 6b kill -9 the controller at ~40 % of the
#              expert shards, `snakemake --unlock`, restart with --rerun-incomplete; 6c touch
#              every workflow file and check a dry run has nothing to do; 6d a profiles/local
#              run of the same config into $WORK/results-local and a comparison of every table.
#              6a-6c were run by hand on parts of the campaign (see each step's note); this
#              scripted whole-campaign form and 6d are TODO: written, NOT run yet.
#
# Every run stage exports HF_HOME=$WORK/hf and HF_HUB_OFFLINE=1, so nothing can come from the
# network; EXPERTALIGN_ALLOW_NO_GPU=1 lets the GPU rules run on the CPU (the local cluster's GPUs
# are fake and torch is a CPU build).
#
# Measured on 2 shared CPU cores (2026-12-03): hub 21 s, verify 11-15 s, config 10-19 s, dry run
# 22 s, plan 15 s; --runner local --part one 11 min 45 s from nothing (150 Brown sentence files in
# 5 batches, the bank, 25 expert shards of 27 s each); through the one-node SLURM cluster 25 expert
# shards of another (model, checkpoint) in 12 min 45 s (each SLURM job 40-70 s, two at a time).
# Not yet measured: the whole campaign (413 jobs; about 45 min locally by these numbers).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SNAKEMAKE="$ROOT/.venv/bin/snakemake"
EXPERTALIGN="$ROOT/.venv/bin/expertalign"

WORK=/tmp/rehearsal
RUNNER=local
PART=one
FAULTS=0
REBUILD_HUB=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --work) WORK="$2"; shift 2 ;;
        --runner) RUNNER="$2"; shift 2 ;;
        --part) PART="$2"; shift 2 ;;
        --faults) FAULTS=1; shift ;;
        --rebuild-hub) REBUILD_HUB=1; shift ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$RUNNER" in local|slurm) ;; *) echo "--runner local|slurm" >&2; exit 2 ;; esac
case "$PART" in one|all) ;; *) echo "--part one|all" >&2; exit 2 ;; esac

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
export HF_HOME="$WORK/hf" HF_HUB_OFFLINE=1 EXPERTALIGN_ALLOW_NO_GPU=1
CONFIG="$WORK/config/rehearsal.yaml"
RESULTS="$WORK/results"

stage() { echo; echo "=== [$(date -u +%H:%M:%S)] stage $*"; STAGE_T0=$SECONDS; }
done_stage() { echo "=== stage done in $((SECONDS - STAGE_T0)) s"; }

# ---------------------------------------------------------------------------------- 1 hub
stage "1 hub: offline Hugging Face cache in $HF_HOME"
if [[ $REBUILD_HUB == 1 || ! -f "$HF_HOME/rehearsal_hub.json" ]]; then
    "$PY" tools/rehearsal/build_hub.py --hf-home "$HF_HOME"
else
    echo "kept $HF_HOME (rehearsal_hub.json exists; --rebuild-hub to rebuild)"
fi
done_stage

# ---------------------------------------------------------------------------------- 2 verify
stage "2 verify: load by name and revision, offline"
"$PY" tools/rehearsal/verify_hub.py > "$WORK/verify.txt" 2>&1 || { cat "$WORK/verify.txt"; exit 1; }
grep -v "Loading weights" "$WORK/verify.txt"
done_stage

# ---------------------------------------------------------------------------------- 3 config
stage "3 config: $CONFIG"
"$PY" tools/rehearsal/make_config.py --out-dir "$WORK/config" --results "$RESULTS"
done_stage

# ---------------------------------------------------------------------------------- 4 plan
stage "4 plan: dry run and expertalign plan"
"$SNAKEMAKE" -n --configfile "$CONFIG" > "$WORK/dryrun.txt" 2>&1
sed -n '/^Job stats:/,/^total/p;/^total/q' "$WORK/dryrun.txt"
"$EXPERTALIGN" plan --configfile "$CONFIG" > "$WORK/plan.txt" 2>&1
tail -n 4 "$WORK/plan.txt"
done_stage

# ---------------------------------------------------------------------------------- 5 run
targets=()
if [[ $PART == one ]]; then
    for i in $(seq 0 24); do
        targets+=("$(printf '%s/experts/brown/neox-small/step512/shard-%04d.arrow' "$RESULTS" "$i")")
    done
fi
if [[ $RUNNER == slurm ]]; then
    PROFILE="$WORK/profile"
    "$PY" tools/rehearsal/slurm_profile.py --out "$PROFILE"
    # one thread per expert job (as profiles/local), so that two run side by side on the node
    RUN_ARGS=(--profile "$PROFILE" --slurm-logdir "$WORK/slurm_logs" --set-threads experts=1)
else
    RUN_ARGS=(--profile profiles/local --cores 2)
fi
stage "5 run: $RUNNER, part $PART"
# targets first: snakemake reads every word after --config/--configfile as their values
rc=0
"$SNAKEMAKE" "${targets[@]}" "${RUN_ARGS[@]}" --configfile "$CONFIG" > "$WORK/run.log" 2>&1 || rc=$?
grep -E "steps \(|^Nothing to be done|Error in rule" "$WORK/run.log" | tail -n 5 || true
[[ $rc == 0 ]] || { echo "run failed ($rc): $WORK/run.log" >&2; exit 1; }
for log in "$RESULTS"/logs/experts/brown/*/*/shard-0000.log; do grep -a -h -m1 "expertalign: loaded " "$log" || true; done
done_stage

[[ $FAULTS == 1 ]] || exit 0
[[ $RUNNER == slurm && $PART == all ]] || { echo "--faults needs --runner slurm --part all" >&2; exit 2; }

# ---------------------------------------------------------------------------------- 6 faults
# TODO: NOT RUN YET. Each drill starts from a fresh results folder of the same config, so that
# there are expert jobs left to disturb; the hub and config are reused.
FRESH="$WORK/results-faults"
n_shards_expected=$(grep -c "^rule experts" "$WORK/dryrun.txt" || true)
count_shards() { find "$FRESH/experts" -name 'shard-*.arrow' 2>/dev/null | wc -l; }
run_fresh() {  # the SLURM run into $FRESH, in the background; sets SM_PID
    "$SNAKEMAKE" "${RUN_ARGS[@]}" --configfile "$CONFIG" --config "results=$FRESH" "$@" \
        >> "$WORK/faults.log" 2>&1 &
    SM_PID=$!
}

# 6a scancel one running expert job. Expected: the profile's `retries: 1` resubmits it
# (attempt 2: doubled memory and time, the next GPU tier) and the run completes; no partial shard
# is left. Run on a part (neox-large@step512, 25 shards) on 2026-12-03: the cancel was seen
# (`SLURM-job '40' failed, SLURM status is: 'CANCELLED'`) and the retry was submitted, but with
# the profile's real tiers it asked for --gpus=a100_80gb:1, which the one-node cluster lacks
# (`sbatch: error: ... Requested node configuration is not available`); slurm_profile.py now
# maps the larger tiers to the node's GPU type. TODO: this whole-campaign form not run yet.
stage "6a fault: scancel one running expert job"
rm -rf "$FRESH"
run_fresh
victim=""
for _ in $(seq 600); do
    victim=$(squeue -h -t R -p gpu -o '%i' | awk 'NR==1')
    [[ -n $victim ]] && break
    sleep 1
done
[[ -n $victim ]] || { echo "no running GPU job to cancel" >&2; kill -INT "$SM_PID"; exit 1; }
echo "scancel $victim"; scontrol show job "$victim" | grep -E "JobName|Comment|StdOut" || true
scancel "$victim"
wait "$SM_PID" && echo "6a: the run completed after the cancel" || { echo "6a FAILED" >&2; exit 1; }
grep -n -m10 "$victim" "$WORK/faults.log" || true
done_stage

# 6b kill -9 the controller at ~40 % of the expert shards; the SLURM jobs it submitted keep
# running. Then README "After the controller dies": `expertalign status`, cancel the dead run's
# jobs by its run ID (`scancel --name`), `snakemake --unlock`, restart with --rerun-incomplete:
# it must finish, rerunning only the shards whose jobs did not finish, every shard readable.
# Run on parts (neox-small@step1) on 2026-12-03: restarting WITHOUT the scancel (10 shards,
# killed at 4) submitted the 6 shards still queued by the dead controller a second time (SLURM
# jobs 76-81 and 82-87 both ran, same outputs); with the scancel (6 shards, killed at 2) the
# restart ran exactly the 4 cancelled shards. TODO: this whole-campaign form not run yet.
stage "6b fault: kill -9 the controller at ~40 %, cancel its jobs, unlock, --rerun-incomplete"
rm -rf "$FRESH"
run_fresh
target=$(( n_shards_expected * 40 / 100 ))
while kill -0 "$SM_PID" 2>/dev/null && (( $(count_shards) < target )); do sleep 2; done
echo "shards done: $(count_shards) of $n_shards_expected; kill -9 $SM_PID"
kill -9 "$SM_PID" || true
sleep 2
"$EXPERTALIGN" status --configfile "$CONFIG" --results "$FRESH" 2>&1 | head -3 || true
run_id=$(squeue -h -o '%j %k' | awk '$2 ~ /^rule_/ {print $1}' | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
if [[ -n $run_id ]]; then
    squeue -h -o '%i %j %T %k' | grep -c "$run_id" | xargs echo "jobs of the dead run $run_id left:"
    scancel --name "$run_id"
fi
"$SNAKEMAKE" --unlock "${RUN_ARGS[@]}" --configfile "$CONFIG" --config "results=$FRESH"
run_fresh --rerun-incomplete
wait "$SM_PID" || { echo "6b FAILED: restart did not complete" >&2; exit 1; }
echo "6b: restart completed; shards $(count_shards)"
done_stage

# 6c touch every workflow file between two runs: with the profiles' rerun-triggers (mtime of
# inputs, params, input, software-env; not code) nothing reruns. Run on parts on 2026-12-03 in
# a copy of Snakefile + workflow/ + envs/ (cp -rL, all touched, `snakemake -s <copy> -d .`):
# "Nothing to be done" with profiles/local and with the adapted SLURM profile, for 50 finished
# expert shards. TODO: this form (touching the checkout itself) not run yet.
stage "6c fault: touch every workflow file, expect nothing to do"
find Snakefile workflow -type f -exec touch {} +
"$SNAKEMAKE" -n "${RUN_ARGS[@]}" --configfile "$CONFIG" --config "results=$FRESH" \
    > "$WORK/after_touch.txt" 2>&1
if grep -q "Nothing to be done" "$WORK/after_touch.txt"; then
    echo "6c: nothing to be done"
else
    echo "6c FAILED: touching the workflow reruns jobs:" >&2
    sed -n '/^Job stats:/,/^total/p;/^total/q' "$WORK/after_touch.txt" >&2
    exit 1
fi
done_stage

# 6d TODO (not run; needs a whole campaign, about 45 min locally on 2 cores): the same config through profiles/local into another folder, and every
# table compared (same columns and rows; numbers equal to 1e-9 relative).
stage "6d compare every table with a profiles/local run"
"$SNAKEMAKE" --profile profiles/local --cores 2 --configfile "$CONFIG" \
    --config "results=$WORK/results-local" > "$WORK/local_full.log" 2>&1
"$PY" - "$FRESH" "$WORK/results-local" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

a, b = Path(sys.argv[1]), Path(sys.argv[2])
tables = sorted(p.relative_to(a) for p in (a / "tables").rglob("*.csv"))
bad = []
for rel in tables:
    if not (b / rel).exists():
        bad.append(f"{rel}: missing in the local run")
        continue
    x, y = pd.read_csv(a / rel), pd.read_csv(b / rel)
    try:
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-9, atol=0)
    except AssertionError as err:
        bad.append(f"{rel}: {str(err).splitlines()[0]}")
extra = sorted(p.relative_to(b) for p in (b / "tables").rglob("*.csv") if not (a / p.relative_to(b)).exists())
bad += [f"{rel}: only in the local run" for rel in extra]
print(f"{len(tables)} tables compared; {len(bad)} differ")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
done_stage
