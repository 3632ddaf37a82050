#!/usr/bin/env bash
# A single-node SLURM cluster with accounting, on this machine only, for the grid's SLURM test.
#
#   .ci/slurm.sh install      Debian packages (munge, MariaDB, slurmdbd, slurmctld, slurmd, clients) when missing
#   .ci/slurm.sh start DIR    munged, MariaDB, slurmdbd, slurmctld, slurmd; config and state under DIR
#   .ci/slurm.sh stop DIR     every daemon `start` launched (by the pids it wrote), nothing else
#
# `start` prints `export SLURM_CONF=DIR/slurm.conf` and links /etc/slurm/slurm.conf to it (refusing
# when another config is there); `stop` removes that link. The cluster is `ci`, its partition
# `debug`, its account `ci`. Every daemon listens on 127.0.0.1 only. It needs root (slurmd runs jobs
# as their user).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
PORT_BASE=${SLURM_CI_PORT_BASE:-16800}   # slurmctld +17, slurmd +18, slurmdbd +19, MariaDB +6

die() { echo "slurm.sh: $*" >&2; exit 1; }

install() {
    local need=()
    for b in munged mariadbd slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
        command -v "$b" >/dev/null 2>&1 || need+=("$b")
    done
    [ ${#need[@]} = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "not root: cannot install ${need[*]}"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: cannot install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        munge mariadb-server slurmdbd slurmctld slurmd slurm-client >/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds
    local t=$1 what=$2; shift 2
    for _ in $(seq $((t * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    die "$what did not come up in ${t}s (logs in $dir)"
}

start() {
    [ -n "$dir" ] || die "usage: slurm.sh start DIR"
    [ "$(id -u)" = 0 ] || die "not root: slurmd must run as root"
    mkdir -p "$dir"/{state,spool,mysql,run}
    dir=$(cd "$dir" && pwd)
    trap 'stop' EXIT   # a daemon that fails to come up takes the others down with it
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

    # munge: the Debian key, its default socket (slurm's clients look there)
    if ! munge -n </dev/null >/dev/null 2>&1; then
        [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 400 /etc/munge/munge.key
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
        runuser -u munge -- munged --pid-file="$dir/run/munged.pid" 2>"$dir/munged.err" \
            || munged --force --pid-file="$dir/run/munged.pid" 2>>"$dir/munged.err"
            wait_for 20 munged munge -n
        pgrep -n -x munged >"$dir/run/munged.pid" || true
    fi

    # MariaDB: its own data folder, TCP on 127.0.0.1, a socket in DIR for setup
    local sock="$dir/run/mysqld.sock" dbport=$((PORT_BASE + 6))
    if [ ! -d "$dir/mysql/mysql" ]; then
        mariadb-install-db --user=root --datadir="$dir/mysql" --auth-root-authentication-method=socket \
            >"$dir/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $dir/mariadb-install.log)"
    fi
    mariadbd --user=root --datadir="$dir/mysql" --socket="$sock" --port="$dbport" --bind-address=127.0.0.1 \
        --pid-file="$dir/run/mariadbd.pid" --skip-name-resolve --innodb-buffer-pool-size=64M \
        --log-error="$dir/mariadb.log" &
    echo $! >"$dir/run/mariadbd.launched"
    wait_for 60 MariaDB mariadb --socket="$sock" -e "select 1"
    mariadb --socket="$sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

    # slurmdbd on that database
    cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT_BASE + 19))
SlurmUser=root
LogFile=$dir/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$dbport
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/slurmdbd.conf"

    cat >"$dir/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$((PORT_BASE + 17))
SlurmdPort=$((PORT_BASE + 18))
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT_BASE + 19))
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    # the clients inside a job (srun of the jobstep executor) run without SLURM_CONF: they read the
    # compiled-in path, so it points here while the cluster runs (an existing real config is left alone)
    if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$SLURM_CONF" ]; then
        die "/etc/slurm/slurm.conf exists (another cluster's); not replacing it"
    fi
    mkdir -p /etc/slurm
    ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf

    slurmdbd   # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster ci >/dev/null 2>&1 || true
    sacctmgr -i add account ci Cluster=ci Description=ci Organization=ci >/dev/null 2>&1 || true
    sacctmgr -i add user root Account=ci DefaultAccount=ci >/dev/null 2>&1 || true
    slurmctld -f "$SLURM_CONF"
    wait_for 60 slurmctld scontrol ping
    slurmd -f "$SLURM_CONF" -N "$host"
    wait_for 60 "slurmd ($host idle)" bash -c "sinfo -h -N -o %t | grep -q idle"
    trap - EXIT
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
    [ -n "$dir" ] || die "usage: slurm.sh stop DIR"
    [ -d "$dir/run" ] || return 0
    local f pid
    for f in slurmd slurmctld slurmdbd mariadbd munged; do
        for p in "$dir/run/$f.pid" "$dir/run/$f.launched"; do
            [ -s "$p" ] || continue
            pid=$(cat "$p")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$p"
        done
    done
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ]; then rm -f /etc/slurm/slurm.conf; fi
}

case "$cmd" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: slurm.sh install | start DIR | stop DIR" ;;
esac
