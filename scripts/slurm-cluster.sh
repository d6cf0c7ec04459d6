#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying nasflow's Slurm executor and for its
# tests (tests/slurm.rs) and benchmark (bench/slurm.sh). Needs root (slurmd starts jobs as their
# users) and Debian/Ubuntu's packages.
#
#   scripts/slurm-cluster.sh install     apt-get install slurmctld slurmd slurm-client munge (if missing)
#   scripts/slurm-cluster.sh start DIR   configure in DIR (private ports, munge socket, spool),
#                                        start munged, slurmctld, slurmd; wait for the node
#   scripts/slurm-cluster.sh stop DIR    cancel this user's jobs there, stop the daemons
#
# After `start`, point Slurm's commands (and nasflow) at the cluster: export SLURM_CONF=DIR/slurm.conf
set -euo pipefail

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "slurm-cluster.sh: $1 needs root" >&2
    exit 3
  fi
}

have_all() {
  for t in munged slurmctld slurmd sbatch squeue scancel sinfo; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || return 1
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
install)
  have_all && exit 0
  need_root "installing packages"
  command -v apt-get >/dev/null 2>&1 || { echo "slurm-cluster.sh: no apt-get here" >&2; exit 3; }
  pkgs="slurmctld slurmd slurm-client munge"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs; }; } >/dev/null 2>&1
  have_all
  ;;
start)
  dir=${2:?usage: slurm-cluster.sh start DIR}
  need_root "slurmd"
  export PATH="$PATH:/usr/sbin:/usr/local/sbin"
  mkdir -p "$dir/state" "$dir/spool"
  dir=$(cd "$dir" && pwd)
  host=$(hostname)
  cpus=$(nproc)
  conf="$dir/slurm.conf"
  cat >"$conf" <<EOF
ClusterName=nasflowlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  [ -r /etc/munge/munge.key ] || { echo "slurm-cluster.sh: /etc/munge/munge.key is missing (reinstall munge)" >&2; exit 3; }
  munged --foreground --force --socket="$dir/munge.sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" --key-file=/etc/munge/munge.key \
    >/dev/null 2>"$dir/munged.out" &
  echo $! >"$dir/munged.daemon"
  for _ in $(seq 100); do [ -S "$dir/munge.sock" ] && break; sleep 0.1; done
  slurmctld -D -i -f "$conf" >/dev/null 2>"$dir/slurmctld.out" &
  echo $! >"$dir/slurmctld.daemon"
  slurmd -D -f "$conf" >/dev/null 2>"$dir/slurmd.out" &
  echo $! >"$dir/slurmd.daemon"
  for _ in $(seq 300); do
    [ "$(SLURM_CONF=$conf sinfo --noheader --format=%T 2>/dev/null)" = idle ] && { echo "export SLURM_CONF=$conf"; exit 0; }
    sleep 0.2
  done
  echo "slurm-cluster.sh: the node did not become idle in 60 s; logs in $dir" >&2
  tail -n 15 "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/*.out >&2 || true
  exit 1
  ;;
stop)
  dir=${2:?usage: slurm-cluster.sh stop DIR}
  export PATH="$PATH:/usr/sbin:/usr/local/sbin"
  if [ -f "$dir/slurm.conf" ]; then
    export SLURM_CONF="$dir/slurm.conf"
    scancel --me 2>/dev/null || true
    for _ in $(seq 100); do
      [ -z "$(squeue --me --noheader 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for d in slurmd slurmctld munged; do
    f="$dir/$d.daemon"
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  ;;
*)
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
