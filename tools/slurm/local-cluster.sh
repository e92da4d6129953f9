#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, from Debian's packages, for testing
# `snakemake --profile profiles/slurm` and submitit end to end.
#
#   tools/slurm/local-cluster.sh install   # apt-get install slurmctld slurmd slurm-client munge
#   tools/slurm/local-cluster.sh start     # write /etc/slurm/*.conf, start munged, slurmctld, slurmd
#   tools/slurm/local-cluster.sh status    # daemons, sinfo, squeue
#   tools/slurm/local-cluster.sh stop      # stop the daemons this script started, by PID file
#
# Needs root and Debian/Ubuntu (apt). Made for containers and CI machines without systemd
# and without usable cgroups: daemons are started by hand, proctrack/linuxproc, task/none.
#
# The one node is this host (`hostname -s`) with its real CPUs and its RealMemory minus a
# margin, and two fake GPUs (Gres=gpu:a100:2) backed by character devices /dev/fakegpu0..1
# (copies of /dev/null), so that `--gpus=a100:1` jobs are scheduled and get
# CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS from SLURM like on a real GPU node.
# Partitions: `cpu` (default) and `gpu`, both on the one node. No accounting database (no
# slurmdbd), so clients poll with `squeue`, and MinJobAge is long enough (600 s) for
# `squeue --states=all` to still see finished jobs; every finished job is recorded by
# jobcomp/filetxt in /var/log/slurm/jobcomp.log, which `sacct --completion` (SLURM <= 23.02)
# reads: each job's state, time limit, memory (TRES) and start/end times.
#
# Idempotent: `start` on a healthy cluster with the same configuration does nothing; otherwise
# it stops what its PID files name, clears stale state (cold start) and starts afresh.
# It refuses to overwrite an /etc/slurm/slurm.conf it did not write (SLURM_LOCAL_FORCE=1 does).
# Environment: SLURM_LOCAL_GPU_TYPE (a100), SLURM_LOCAL_GPUS (2), SLURM_LOCAL_WAIT_S (90).
set -euo pipefail

CONF_DIR=/etc/slurm
RUN_DIR=/run/slurm-local          # PID files and the marker of what this script started
LOG_DIR=/var/log/slurm
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
GPU_TYPE=${SLURM_LOCAL_GPU_TYPE:-a100}
N_GPUS=${SLURM_LOCAL_GPUS:-2}
WAIT_S=${SLURM_LOCAL_WAIT_S:-90}
PACKAGES=(slurmctld slurmd slurm-client munge)
MARKER="Written by tools/slurm/local-cluster.sh"

log() { printf '[local-cluster] %s\n' "$*"; }
die() { printf '[local-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (it writes /etc/slurm and starts daemons)"; }

# running PID: true when PID is a live process (a zombie, e.g. a daemon killed while its
# parent does not reap it, is not).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# pid_alive PIDFILE NAME: true when PIDFILE names a live process whose command is NAME.
pid_alive() {
  local f=$1 name=$2 pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid ]] && running "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]]
}

# stop_pidfile PIDFILE NAME: TERM the process the PID file names (if it is NAME), wait, KILL.
stop_pidfile() {
  local f=$1 name=$2 pid i
  if pid_alive "$f" "$name"; then
    pid=$(tr -dc '0-9' <"$f")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$f"
}

cmd_install() {
  need_root
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    log "installed already: slurm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null), munge $(dpkg-query -W -f='${Version}' munge 2>/dev/null)"
    return 0
  fi
  command -v apt-get >/dev/null || die "apt-get not found: this script needs Debian or Ubuntu"
  export DEBIAN_FRONTEND=noninteractive
  local t0=$SECONDS
  log "apt-get install ${PACKAGES[*]}"
  # Try without `apt-get update` first (fast when the lists are fresh), then with it.
  if ! apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/tmp/slurm-local-apt.log 2>&1; then
    apt-get update -qq >>/tmp/slurm-local-apt.log 2>&1 || { tail -20 /tmp/slurm-local-apt.log >&2; die "apt-get update failed"; }
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>/tmp/slurm-local-apt.log 2>&1 \
      || { tail -20 /tmp/slurm-local-apt.log >&2; die "apt-get install failed (log: /tmp/slurm-local-apt.log)"; }
  fi
  log "installed slurm $(dpkg-query -W -f='${Version}' slurmctld) in $((SECONDS - t0)) s"
}

node_name() { hostname -s; }

write_configs() {
  local node cpus mem_total margin mem gpu_last
  node=$(node_name)
  cpus=$(nproc)
  mem_total=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  [[ -n $mem_total ]] || mem_total=$(($(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024))
  margin=$((mem_total / 10))
  ((margin < 1024)) && margin=1024
  ((margin > 8192)) && margin=8192
  mem=$((mem_total - margin))
  ((mem < 256)) && mem=256
  gpu_last=$((N_GPUS - 1))

  mkdir -p "$CONF_DIR"
  if [[ -s $CONF_DIR/slurm.conf ]] && ! grep -q "$MARKER" "$CONF_DIR/slurm.conf" \
    && [[ ${SLURM_LOCAL_FORCE:-0} != 1 ]]; then
    die "$CONF_DIR/slurm.conf was not written by this script (a real SLURM site?): not touching it; SLURM_LOCAL_FORCE=1 overrides"
  fi
  local tmp
  tmp=$(mktemp -d)
  cat >"$tmp/slurm.conf" <<EOF
# ${MARKER}: a one-node test cluster (no systemd, no cgroups,
# no accounting database; job completions in a text file). Do not use on a real cluster.
ClusterName=localcluster
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Memory limits without cgroups: slurmstepd samples each step's memory every second and kills
# a step over its allocation (--mem), as cgroup ConstrainRAMSpace does on a real site.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
SlurmdParameters=config_overrides
# Keep finished jobs visible to 'squeue --states=all' (the status command without accounting).
MinJobAge=600
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
StateSaveLocation=${SPOOL_CTLD}
SlurmdSpoolDir=${SPOOL_D}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} Gres=gpu:${GPU_TYPE}:${N_GPUS} State=UNKNOWN
PartitionName=cpu Nodes=${node} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${node} Default=NO MaxTime=INFINITE State=UP
EOF
  cat >"$tmp/gres.conf" <<EOF
# Fake GPUs: character devices that are copies of /dev/null (see local-cluster.sh).
AutoDetect=off
NodeName=${node} Name=gpu Type=${GPU_TYPE} File=/dev/fakegpu[0-${gpu_last}]
EOF
  cat >"$tmp/cgroup.conf" <<EOF
# No cgroup plugin is configured in slurm.conf (proctrack/linuxproc, task/none): memory is
# limited by jobacct_gather/linux with OverMemoryKill instead; this file keeps slurmd quiet.
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
  CONF_CHANGED=0
  local f
  for f in slurm.conf gres.conf cgroup.conf; do
    if ! cmp -s "$tmp/$f" "$CONF_DIR/$f"; then
      CONF_CHANGED=1
      install -m 0644 "$tmp/$f" "$CONF_DIR/$f"
    fi
  done
  rm -rf "$tmp"
  NODE=$node CPUS=$cpus MEM=$mem
}

make_fake_gpus() {
  local i dev
  for ((i = 0; i < N_GPUS; i++)); do
    dev=/dev/fakegpu$i
    if [[ ! -c $dev ]]; then
      rm -f "$dev"
      mknod -m 0666 "$dev" c 1 3 || die "mknod $dev failed (SLURM needs a character device for a GPU File=)"
    fi
  done
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
  # munge clients refuse a socket directory that is not world-readable.
  chmod 0755 "$MUNGE_RUN"
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key --force
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  chown munge:munge /etc/munge
  chmod 0700 /etc/munge
  if pid_alive "$MUNGE_PID" munged && munge_ok; then
    log "munged running already (pid $(cat "$MUNGE_PID"))"
    return 0
  fi
  stop_pidfile "$MUNGE_PID" munged
  rm -f "$MUNGE_RUN"/munge.socket.2 "$MUNGE_RUN"/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged --force
  local i
  for ((i = 0; i < 100; i++)); do
    munge_ok && break
    sleep 0.1
  done
  munge_ok || die "munged did not come up (see /var/log/munge/munged.log)"
  touch "$RUN_DIR/started-munged"
  log "munged started (pid $(cat "$MUNGE_PID"))"
}

# port_busy PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pids_named NAME: PIDs whose command is NAME (only to name them in an error message).
pids_named() {
  local d
  for d in /proc/[0-9]*; do
    [[ $(cat "$d/comm" 2>/dev/null) == "$1" ]] && printf '%s ' "${d#/proc/}"
  done
  return 0
}

node_state() { sinfo -h -N -n "$(node_name)" -o '%t' 2>/dev/null | head -1; }

# wait_idle: until sinfo shows the node idle (or mixed/allocated when jobs run).
wait_idle() {
  local i st=""
  for ((i = 0; i < WAIT_S * 2; i++)); do
    st=$(node_state || true)
    case $st in
    idle | mix | alloc) return 0 ;;
    down* | drain* | drng*)
      # ReturnToService=2 brings a node back by itself; nudge in case it was stored down.
      if ((i % 10 == 9)); then
        scontrol update NodeName="$(node_name)" State=RESUME >/dev/null 2>&1 || true
      fi
      ;;
    esac
    sleep 0.5
  done
  log "node state after ${WAIT_S} s: '${st:-none}'"
  return 1
}

healthy() {
  pid_alive "$CTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd && munge_ok \
    && [[ $(node_state || true) =~ ^(idle|mix|alloc)$ ]]
}

cmd_start() {
  need_root
  command -v slurmctld >/dev/null || die "SLURM is not installed: run '$0 install' first"
  local t0=$SECONDS
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$SPOOL_CTLD" "$SPOOL_D"
  write_configs
  make_fake_gpus
  if [[ $CONF_CHANGED == 0 ]] && healthy; then
    log "running already: node $NODE idle, config unchanged"
    cmd_status
    return 0
  fi
  # Anything left from before (crashed run, other config): stop what our PID files name.
  stop_pidfile "$SLURMD_PID" slurmd
  stop_pidfile "$CTLD_PID" slurmctld
  local port name
  for port in 6817:slurmctld 6818:slurmd; do
    name=${port#*:}
    port=${port%%:*}
    if port_busy "$port"; then
      die "port $port is in use by a $name this script has no PID file for (pids: $(pids_named "$name")); stop it first"
    fi
  done
  start_munge
  # Cold start: forget jobs and node states from a previous run.
  rm -rf "${SPOOL_CTLD:?}"/* "${SPOOL_D:?}"/*
  : >"$LOG_DIR/slurmctld.log"
  : >"$LOG_DIR/slurmd.log"
  slurmctld -c -i || { tail -20 "$LOG_DIR/slurmctld.log" >&2; die "slurmctld failed to start"; }
  local i
  for ((i = 0; i < 100; i++)); do
    scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.2
  done
  if ! scontrol ping | grep -q UP || ! pid_alive "$CTLD_PID" slurmctld; then
    tail -20 "$LOG_DIR/slurmctld.log" >&2
    die "slurmctld does not answer"
  fi
  slurmd -c || { tail -20 "$LOG_DIR/slurmd.log" >&2; die "slurmd failed to start"; }
  if ! wait_idle; then
    tail -20 "$LOG_DIR/slurmctld.log" >&2
    tail -20 "$LOG_DIR/slurmd.log" >&2
    die "node $NODE did not become idle"
  fi
  log "started in $((SECONDS - t0)) s: munged $(cat "$MUNGE_PID"), slurmctld $(cat "$CTLD_PID"), slurmd $(cat "$SLURMD_PID")"
  log "node $NODE: CPUs=$CPUS RealMemory=${MEM}MB Gres=gpu:${GPU_TYPE}:${N_GPUS} (/dev/fakegpu0..$((N_GPUS - 1)))"
  log "partitions: cpu (default), gpu; config $CONF_DIR/{slurm,gres,cgroup}.conf; logs $LOG_DIR"
  log "no accounting: use 'squeue' for job status (MinJobAge=600)"
  sinfo
}

cmd_stop() {
  need_root
  # Cancel what is still queued so that no job step outlives its daemons.
  if pid_alive "$CTLD_PID" slurmctld; then
    scancel --state=PENDING,RUNNING --full --quiet -u root 2>/dev/null || true
    scancel --quiet -u root 2>/dev/null || true
  fi
  stop_pidfile "$SLURMD_PID" slurmd
  stop_pidfile "$CTLD_PID" slurmctld
  if [[ -e $RUN_DIR/started-munged ]]; then
    stop_pidfile "$MUNGE_PID" munged
    rm -f "$RUN_DIR/started-munged"
  elif pid_alive "$MUNGE_PID" munged; then
    log "leaving munged (pid $(cat "$MUNGE_PID")) running: this script did not start it"
  fi
  log "stopped"
}

cmd_status() {
  local name f ok=0
  for name in munged slurmctld slurmd; do
    case $name in
    munged) f=$MUNGE_PID ;;
    slurmctld) f=$CTLD_PID ;;
    slurmd) f=$SLURMD_PID ;;
    esac
    if pid_alive "$f" "$name"; then
      log "$name: running (pid $(tr -dc '0-9' <"$f"))"
    else
      log "$name: not running"
      ok=1
    fi
  done
  if ((ok == 0)); then
    sinfo -N -o '%N %P %t %c %m %G' || ok=1
    squeue --states=all -o '%i %P %j %T %M %R' || true
  fi
  return $ok
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
restart) cmd_stop && cmd_start ;;
*)
  echo "usage: $0 {install|start|stop|status|restart}" >&2
  exit 2
  ;;
esac
