#!/usr/bin/env bash
# The rehearsal (project issue 19): config/paper.yaml's campaign shape at toy scale, with models
# loaded exactly as a cluster loads Pythia: by Hub name and `revision=`, with HF_HUB_OFFLINE=1,
# from a Hugging Face cache (HF_HOME) that this script builds offline.
#
#   tools/rehearse_campaign.sh [--work DIR] [--runner local|slurm] [--part one|all] [--faults]
#                              [--small] [--from 6a|6c|6d|6e|6f] [--rebuild-hub]
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
#              Brown sentence batches, SPP, pilot), results in $WORK/results. With --faults, one
#              concept more that cannot get sentences (the last row). --small: the CI's size
#              (tests/test_rehearsal.py), 56 concepts, neox-small at step512 and step143000 and
#              its random-init twin, 10 shards each.
#   4 plan     `snakemake -n` (job counts per rule) and `expertalign plan` for that config.
#   5 run      (without --faults) --runner local: profiles/local, --cores 2; --runner slurm: the
#              local one-node SLURM cluster (tools/slurm/local-cluster.sh, needs root) with
#              profiles/slurm adapted by tools/rehearsal/slurm_profile.py. --part one: only the 25
#              expert shards of neox-small@step512 (and what they need); --part all: everything.
#   6 faults   (--faults, needs --runner slurm and --part all) one SLURM campaign from nothing,
#              disturbed while it runs (README "The campaign rehearsal"): 6a scancel the first
#              running expert job; the pilot gets 600 MB on attempt 1 (killed by SLURM) and
#              1,200 MB on attempt 2; 6b kill -9 the controller at 40 % of the expert shards, then
#              README "After the controller dies" (status, scancel --name, --unlock, restart);
#              6c the failed concept's shards are the only failures and `expertalign status`
#              lists it; its row is taken out and the campaign runs to its end; 6d touch every
#              workflow file, a dry run has nothing to do; 6e submissions, repeats and wasted
#              job-minutes from SLURM's job-completion record; 6f a profiles/local run of the
#              same config and every table compared. --from 6c (6d, ...) continues an interrupted
#              rehearsal at that drill with the config, results and SLURM record of $WORK.
#
# Every run stage exports HF_HOME=$WORK/hf and HF_HUB_OFFLINE=1, so nothing can come from the
# network; EXPERTALIGN_ALLOW_NO_GPU=1 lets the GPU rules run on the CPU (the local cluster's GPUs
# are fake and torch is a CPU build).
#
# Measured on 2 shared CPU cores: hub 21 s, verify 11-15 s, config 10-19 s, dry run 22 s, plan
# 15 s; the whole campaign with its faults (--runner slurm --part all --faults): README "The
# campaign rehearsal".
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
SMALL=0
FROM=6a
while [[ $# -gt 0 ]]; do
    case "$1" in
        --work) WORK="$2"; shift 2 ;;
        --runner) RUNNER="$2"; shift 2 ;;
        --part) PART="$2"; shift 2 ;;
        --faults) FAULTS=1; shift ;;
        --rebuild-hub) REBUILD_HUB=1; shift ;;
        --small) SMALL=1; shift ;;
        --from) FROM="$2"; shift 2 ;;
        -h|--help) sed -n '2,47p' "$0"; exit 0 ;;
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
if [[ $FROM == 6a ]]; then
stage "3 config: $CONFIG"
SHAPE=()
# --small: the CI's version (tests/test_rehearsal.py), the same drills on one model size at two
# branches plus its random-init twin, 56 concepts, 10 expert shards per (model, checkpoint)
[[ $SMALL == 1 ]] && SHAPE=(--n-concepts 56 --spp-per-level 2 --concepts-per-job 12
    --models neox-small --branches step512 step143000)
failing=()
[[ $FAULTS == 1 ]] && failing=(--failing-concept)
"$PY" tools/rehearsal/make_config.py --out-dir "$WORK/config" --results "$RESULTS" "${SHAPE[@]}" "${failing[@]}"
done_stage

# ---------------------------------------------------------------------------------- 4 plan
stage "4 plan: dry run and expertalign plan"
# the drills start from nothing (their dry run counts the expert shards to kill at 40 % of)
[[ $FAULTS == 1 ]] && rm -rf "$RESULTS" "$WORK/slurm_logs"
"$SNAKEMAKE" -n --configfile "$CONFIG" > "$WORK/dryrun.txt" 2>&1
sed -n '/^Job stats:/,/^total/p;/^total/q' "$WORK/dryrun.txt"
"$EXPERTALIGN" plan --configfile "$CONFIG" > "$WORK/plan.txt" 2>&1
tail -n 4 "$WORK/plan.txt"
done_stage
else
    echo "resuming the drills at $FROM: the config, plan and results of $WORK are kept"
fi

# ---------------------------------------------------------------------------------- 5 run
targets=()
if [[ $PART == one ]]; then
    for i in $(seq 0 24); do
        targets+=("$(printf '%s/experts/brown/neox-small/step512/shard-%04d.arrow' "$RESULTS" "$i")")
    done
fi
if [[ $RUNNER == slurm ]]; then
    PROFILE="$WORK/profile"
    squeeze=()
    # the memory drill: the pilot (one GPU job; about 950 MB with its job's Snakemake) gets
    # 600 MB on attempt 1, killed by SLURM, and 1,200 MB on attempt 2 (the profile's escalation)
    [[ $FAULTS == 1 ]] && squeeze=(--squeeze pilot=600)
    "$PY" tools/rehearsal/slurm_profile.py --out "$PROFILE" "${squeeze[@]}"
    # one thread per expert job (as profiles/local), so that two run side by side on the node
    RUN_ARGS=(--profile "$PROFILE" --slurm-logdir "$WORK/slurm_logs" --set-threads experts=1)
else
    RUN_ARGS=(--profile profiles/local --cores 2)
fi
if [[ $FAULTS == 0 ]]; then
    stage "5 run: $RUNNER, part $PART"
    # targets first: snakemake reads every word after --config/--configfile as their values
    rc=0
    "$SNAKEMAKE" "${targets[@]}" "${RUN_ARGS[@]}" --configfile "$CONFIG" > "$WORK/run.log" 2>&1 || rc=$?
    grep -E "steps \(|^Nothing to be done|Error in rule" "$WORK/run.log" | tail -n 5 || true
    [[ $rc == 0 ]] || { echo "run failed ($rc): $WORK/run.log" >&2; exit 1; }
    for log in "$RESULTS"/logs/experts/brown/*/*/shard-0000.log; do grep -a -h -m1 "expertalign: loaded " "$log" || true; done
    done_stage
    exit 0
fi
[[ $RUNNER == slurm && $PART == all ]] || { echo "--faults needs --runner slurm --part all" >&2; exit 2; }

# ---------------------------------------------------------------------------------- 6 faults
# One SLURM campaign of the config (with a concept that cannot get sentences, make_config.py
# --failing-concept), disturbed while it runs: 6a one running expert job scancelled; 6b the
# controller kill -9ed at ~40 % of the expert shards and restarted by README "After the
# controller dies"; 6c the failed concept listed by `expertalign status` and its remedy; 6d
# every workflow file touched, nothing to do; 6e what it cost (jobcomp record = sacct -c);
# 6f a profiles/local run of the final config and every table compared.
JOBCOMP=/var/log/slurm/jobcomp.log
# the record's lines before the campaign (kept for --from)
[[ $FROM == 6a ]] && { (wc -l < "$JOBCOMP") 2>/dev/null || echo 0; } > "$WORK/jobcomp_skip"
JOBCOMP_SKIP=$(cat "$WORK/jobcomp_skip")
n_shards_expected=$(awk '$1 == "experts" && !seen {print $2; seen = 1}' "$WORK/dryrun.txt")
count_shards() { find "$RESULTS/experts" -name 'shard-*.arrow' 2>/dev/null | wc -l; }
n_controllers() { find "$WORK" -maxdepth 1 -name 'controller-*.log' | wc -l; }
last_controller_log() { echo "$WORK/controller-$(n_controllers).log"; }
start_controller() {  # the SLURM controller in the background; sets SM_PID
    local log
    log="$WORK/controller-$(( $(n_controllers) + 1 )).log"
    "$SNAKEMAKE" "${RUN_ARGS[@]}" --configfile "$CONFIG" "$@" > "$log" 2>&1 &
    SM_PID=$!
    echo "controller $SM_PID started, log $log"
}
drill() { [[ ! $1 < $FROM ]]; }  # whether drill $1 runs (--from skips those before it)
if drill 6a; then
stage "6a fault: scancel one running expert job"
start_controller
victim=""
for _ in $(seq 900); do
    victim=$(squeue -h -t R -o '%i %k' | awk '$2 ~ /^rule_experts/ && !seen {print $1; seen = 1}')
    [[ -n $victim ]] && break
    kill -0 "$SM_PID" 2>/dev/null || { echo "6a FAILED: the controller ended early" >&2; exit 1; }
    sleep 1
done
[[ -n $victim ]] || { echo "6a FAILED: no running expert job to cancel" >&2; exit 1; }
echo "scancel $victim ($(squeue -h -j "$victim" -o '%k'))"
scancel "$victim"
done_stage

stage "6b fault: kill -9 the controller at ~40 % of $n_shards_expected expert shards"
target=$(( n_shards_expected * 40 / 100 ))
while kill -0 "$SM_PID" 2>/dev/null && (( $(count_shards) < target )); do sleep 2; done
kill -0 "$SM_PID" 2>/dev/null || { echo "6b FAILED: the controller ended before 40 %" >&2; exit 1; }
echo "expert shards done: $(count_shards) of $n_shards_expected; kill -9 $SM_PID"
kill -9 "$SM_PID"
wait "$SM_PID" 2>/dev/null || true
sleep 2
# README "After the controller dies", steps 1-3
"$EXPERTALIGN" status --configfile "$CONFIG" > "$WORK/status-after-kill.txt" 2>&1 || true
grep -m1 -i "lock held" "$WORK/status-after-kill.txt" || { echo "6b FAILED: status does not see the dead controller's lock" >&2; exit 1; }
run_id=$(squeue -h -o '%j %k' | awk '$2 ~ /^rule_/ {print $1}' | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
if [[ -n $run_id ]]; then
    echo "jobs of the dead run $run_id in SLURM: $(squeue -h -n "$run_id" -o '%i' | wc -l); scancel --name $run_id"
    scancel --name "$run_id"
    while [[ -n $(squeue -h -n "$run_id" -t R,PD,CG -o '%i') ]]; do sleep 1; done
fi
"$SNAKEMAKE" --unlock "${RUN_ARGS[@]}" --configfile "$CONFIG" > /dev/null 2>&1
start_controller
rc=0
wait "$SM_PID" || rc=$?
echo "restarted controller ended with $rc; expert shards $(count_shards) of $n_shards_expected"
done_stage

fi

if drill 6c; then
stage "6c failed concept: listed with its remedy; the remedy applied"
failing=$(tail -n 1 "$WORK/config/concepts.tsv" | cut -f1)
"$EXPERTALIGN" status --configfile "$CONFIG" --no-slurm > "$WORK/status-after-run.txt" 2>&1 || true
# (no `grep | head` under pipefail: head's early exit would fail the pipe)
grep -i -A2 "$failing" "$WORK/status-after-run.txt" > "$WORK/status-failing.txt" || true
sed -n 1,8p "$WORK/status-failing.txt"
log=$(last_controller_log)
grep -h "^Error in rule" "$log" | sort | uniq -c | sed 's/^/failed in the restarted run: /' || true
grep -q "$failing" "$WORK/status-after-run.txt" || { echo "6c FAILED: status does not list $failing" >&2; exit 1; }
# the pilot's attempt 1 fails by design (the memory drill) in whichever controller runs it
others=$(grep -h "^Error in rule" "$log" | grep -vcE "rule (experts|pilot):" || true)
[[ $others == 0 ]] || { echo "6c FAILED: rules other than the failed concept's expert shards and the pilot's first attempt failed" >&2; exit 1; }
[[ -s $RESULTS/tables/pilot_stability.csv ]] || { echo "6c FAILED: the pilot did not pass on its second attempt" >&2; exit 1; }
# the remedy chosen: take the concept's row out (the table without --failing-concept)
"$PY" tools/rehearsal/make_config.py --out-dir "$WORK/config" --results "$RESULTS" "${SHAPE[@]}" 2> /dev/null
"$SNAKEMAKE" -n "${RUN_ARGS[@]}" --configfile "$CONFIG" > "$WORK/dryrun-remedy.txt" 2>&1
sed -n '/^Job stats:/,/^total/p;/^total/q' "$WORK/dryrun-remedy.txt"
start_controller
wait "$SM_PID" || { echo "6c FAILED: the run after the remedy failed: $(last_controller_log)" >&2; exit 1; }
echo "the campaign is complete: $(grep -c . "$RESULTS/tables/experts_vs_baselines.csv") rows in experts_vs_baselines.csv"
done_stage

fi

if drill 6d; then
stage "6d touch every workflow file: nothing to do"
find Snakefile workflow -type f -exec touch {} +
"$SNAKEMAKE" -n "${RUN_ARGS[@]}" --configfile "$CONFIG" > "$WORK/after-touch.txt" 2>&1
grep -q "Nothing to be done" "$WORK/after-touch.txt" || {
    echo "6d FAILED: touching the workflow reruns jobs:" >&2
    sed -n '/^Job stats:/,/^total/p;/^total/q' "$WORK/after-touch.txt" >&2
    exit 1
}
echo "6d: nothing to be done"
done_stage

fi

if drill 6e; then
stage "6e what the campaign cost in SLURM (jobcomp record, as sacct --completion reads it)"
"$PY" tools/rehearsal/slurm_stats.py --jobcomp "$JOBCOMP" --skip "$JOBCOMP_SKIP" \
    --slurm-logs "$WORK/slurm_logs" --controller-logs "$WORK"/controller-*.log \
    --show-rule pilot --json "$WORK/slurm_stats.json"
# the campaign's failed jobs as sacct shows them (its cancelled ones are counted above)
runs=$(grep -ho "SLURM run ID: \S*" "$WORK"/controller-*.log | awk '{print $4}' | paste -sd '|')
sacct --completion -o JobID,JobName%36,Partition,State,Start,End 2> /dev/null \
    | awk -v skip="$JOBCOMP_SKIP" -v runs="^($runs)$" 'NR <= 2 || (NR > skip + 2 && $2 ~ runs && $4 != "CANCELLED" && $4 != "COMPLETED")' || true
done_stage

fi

stage "6f a profiles/local run of the same config, every table compared"
rm -rf "$WORK/results-local"
"$SNAKEMAKE" --profile profiles/local --cores 2 --configfile "$CONFIG" \
    --config "results=$WORK/results-local" > "$WORK/local-run.log" 2>&1 \
    || { echo "6f FAILED: the local run failed: $WORK/local-run.log" >&2; exit 1; }
"$PY" tools/rehearsal/compare_tables.py "$RESULTS" "$WORK/results-local"
done_stage
echo "rehearsal passed in $SECONDS s"
