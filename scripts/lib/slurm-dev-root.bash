# shellcheck shell=bash
# Sourced by scripts/slurm-dev when SLURM_DEV_RELEASE is 24.11 or 26.05: a further,
# CURRENT Slurm cluster from Debian's packages (24.11: Debian 13 "trixie"; 26.05: Debian
# "forky", the testing release) in a root made by debootstrap, running beside the host's
# 22.05 cluster (and each other). Everything of its own lives in the root: munge key +
# socket, slurm.conf, state, logs, pid files. On the host it only adds ports (24.11:
# slurmctld 6917, slurmdbd 6919, slurmd 17101.., slurmrestd 127.0.0.1:6821; 26.05: 6927,
# 6929, 17201.., 127.0.0.1:6831), one database + DB user on the host's MariaDB, and bind
# mounts (/proc /sys /dev /tmp /home) into the root, so jobs and their outputs in /tmp
# work for every cluster. Daemons and CLI tools run as `chroot $ROOT <command>`.
#
# Extra knobs: SLURM_DEV_ROOT=/var/lib/rechenwerk-slurm/<release>, SLURM_DEV_MIRROR=http://deb.debian.org/debian
# Uses the helpers of scripts/slurm-dev (alive, pid_of, wait_for, write_if_changed, log, die).

REL=$RELEASE
case "$REL" in
  24.11) SUITE=trixie; CTLD_PORT=6917; DBD_PORT=6919; SLURMD_PORT0=17100; REST_TCP=127.0.0.1:6821 ;;
  # forky's debootstrap script may be missing on an older host: sid's is the same
  26.05) SUITE=forky; CTLD_PORT=6927; DBD_PORT=6929; SLURMD_PORT0=17200; REST_TCP=127.0.0.1:6831 ;;
  *) die "scripts/lib/slurm-dev-root.bash: no root release $REL" ;;
esac
TAG=${REL/./}  # 2411, 2605
ROOT=${SLURM_DEV_ROOT:-/var/lib/rechenwerk-slurm/$REL}
MIRROR=${SLURM_DEV_MIRROR:-http://deb.debian.org/debian}
ROOT_PACKAGES=(munge slurmctld slurmd slurmdbd slurmrestd slurm-client slurm-wlm-jwt-plugin
               slurm-wlm-mysql-plugin)
CLUSTER=rechenwerk$TAG
# Paths as the daemons see them (inside the root); $ROOT$X is the host's view.
ETC=/etc/slurm
RUNDIR=/run/slurm-dev
STATE=/var/spool/slurmctld
LOGDIR=/var/log/slurm
GPUDIR=/var/lib/slurm/fake-gpus
JWT_KEY=$STATE/jwt_hs256.key
REST_SOCK=/run/slurmrestd.sock
DB_NAME=slurm_acct_db_$TAG
DB_USER=slurm$TAG
DB_PASS=slurm-dev-only
DONE_MARK=$ROOT/.rechenwerk-root-ready
# A data format every root release's slurmrestd offers, for its health checks.
REST_PING_FORMAT=v0.0.42
# The unix-socket slurmrestd (rest_auth/local) serves root's clients: 24.11 runs it as root
# with the user check disabled; 26.05 refuses that (fatal) and instead runs as root in
# become_user mode, taking on each connecting client's own user.
REST_LOCAL_SECURITY=disable_user_check
[ "$REL" = 24.11 ] || REST_LOCAL_SECURITY=become_user

# node names n2411a, n2411b, ... / n2605a, ... (the host has node1..N)
node_name() { printf 'n%s%s' "$TAG" "$(printf '%b' "\\$(printf '%03o' $((96 + $1)))")"; }

# in_root CMD...: run CMD in the root, without the caller's Slurm environment.
in_root() { env -u SLURM_CONF -u SLURM_JWT chroot "$ROOT" "$@"; }

# ---------------------------------------------------------------- the root itself
ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  log "installing debootstrap on the host"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

mounts_under() { findmnt -rn -o TARGET | awk -v r="$1" 'index($0, r "/") == 1 || $0 == r'; }

make_root() {
  [ -f "$DONE_MARK" ] && return 0
  ensure_debootstrap
  local partial=$ROOT.partial t0; t0=$(date +%s)
  # Never rm -rf a tree that still has /tmp or /home bound into it.
  [ -z "$(mounts_under "$partial")" ] || die "$partial has mounts; unmount them first"
  rm -rf --one-file-system "$partial"
  mkdir -p "$(dirname "$ROOT")"
  log "debootstrap --variant=minbase $SUITE $partial $MIRROR (once; cached afterwards)"
  local script=()
  [ -e "/usr/share/debootstrap/scripts/$SUITE" ] || script=(/usr/share/debootstrap/scripts/sid)
  debootstrap --variant=minbase "$SUITE" "$partial" "$MIRROR" "${script[@]}" >"$(dirname "$ROOT")/debootstrap-$REL.log" 2>&1 \
    || { tail -20 "$(dirname "$ROOT")/debootstrap-$REL.log" >&2; die "debootstrap failed"; }
  [ -z "$(mounts_under "$partial")" ] || die "debootstrap left mounts under $partial"
  if [ -e "$ROOT" ]; then
    [ -z "$(mounts_under "$ROOT")" ] || die "$ROOT is incomplete but has mounts; run: SLURM_DEV_RELEASE=$REL $0 down"
    rm -rf --one-file-system "$ROOT"
  fi
  mv "$partial" "$ROOT"
  log "debootstrap done in $(( $(date +%s) - t0 )) s"
}

# bind SRC: SRC bound at $ROOT/SRC, recursively, as a slave mount so an unmount in the
# root never propagates back to the host.
bind_into() {
  local dst=$ROOT$1
  mountpoint -q "$dst" && return 0
  mkdir -p "$dst"
  mount --rbind "$1" "$dst"
  mount --make-rslave "$dst"
}
mount_root() {
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  bind_into /sys
  bind_into /dev
  bind_into /tmp
  bind_into /home
  # The daemons resolve localhost and this machine's name (slurmd binds to it): the
  # host's /etc/hosts, plus the host name when that file lacks it.
  { cat /etc/hosts
    grep -qw "$(hostname)" /etc/hosts || printf '127.0.1.1\t%s\n' "$(hostname)"
    grep -qw localhost /etc/hosts || printf '127.0.0.1\tlocalhost\n'
  } | write_if_changed "$ROOT/etc/hosts" root:root 644 || true
  [ -s "$ROOT/etc/resolv.conf" ] || cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
}
umount_root() {
  local m
  # deepest first
  for m in $(mounts_under "$ROOT" | sort -r); do umount -l "$m" 2>/dev/null || true; done
}

install_root_packages() {
  local missing=() p
  for p in "${ROOT_PACKAGES[@]}"; do
    in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing in the root: ${missing[*]} (--no-install-recommends)"
    # The packages must not start daemons (this script starts and owns them).
    printf '#!/bin/sh\n# written by scripts/slurm-dev: daemons are started by the script\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    if [ "$SUITE" != trixie ]; then
      # A testing release's Release file is valid for a week only; a mirror or cache that
      # lags behind would make apt refuse it. Signatures are still checked.
      printf 'Acquire::Check-Valid-Until "false";\n' >"$ROOT/etc/apt/apt.conf.d/90rechenwerk-valid-until"
    fi
    in_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    in_root apt-get clean
  fi
  touch "$DONE_MARK"
}

# ---------------------------------------------------------------- users
# Host users (uid 1000..59999) and groups must exist in the root too: jobs run as the
# submitting Unix user, and slurmctld/slurmd resolve uids in the root's /etc/passwd.
sync_users() {
  local kind file
  for kind in passwd group; do
    file=$ROOT/etc/$kind
    [ -f "$file" ] || continue
    # The root has no accounts of its own in that range: replace them all by the host's.
    { awk -F: '!($3 >= 1000 && $3 < 60000)' "$file"; awk -F: '$3 >= 1000 && $3 < 60000' "/etc/$kind"; } >"$file.new"
    if cmp -s "$file" "$file.new"; then rm -f "$file.new"; else chmod --reference="$file" "$file.new"; mv -f "$file.new" "$file"; fi
  done
}

# ---------------------------------------------------------------- database (host MariaDB)
# slurmdbd in the root reaches the host's server over TCP (127.0.0.1:3306) or, when that
# server listens on a socket only (scripts/slurm-dev's own, skip-networking), through
# /run/mysqld bound into the root.
STORAGE_HOST=127.0.0.1
setup_db() {
  local mysql
  if mysql_tcp_ok; then
    STORAGE_HOST=127.0.0.1; mysql=(mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -uroot)
  elif mysql_socket_ok; then
    STORAGE_HOST=localhost; mysql=(mariadb --protocol=socket -S "$MYSQL_SOCK" -uroot)
    mkdir -p "$ROOT/run/mysqld"
    mountpoint -q "$ROOT/run/mysqld" || { mount --bind /run/mysqld "$ROOT/run/mysqld"; mount --make-slave "$ROOT/run/mysqld"; }
  else
    die "no MariaDB answers for root on 127.0.0.1:3306 or $MYSQL_SOCK: start the 22.05 cluster first (scripts/slurm-dev up)"
  fi
  "${mysql[@]}" <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
EOF
}

# ---------------------------------------------------------------- config
write_root_configs() {
  mkdir -p "$ROOT$ETC" "$ROOT$STATE" "$ROOT$LOGDIR" "$ROOT$GPUDIR" "$ROOT/var/spool/slurmd" "$ROOT$RUNDIR"
  in_root chown slurm:slurm "$STATE" "$LOGDIR"
  local i gres_spec node_lines="" names=""
  for i in $(seq 0 $((GPUS - 1))); do ln -sfn /dev/null "$ROOT$GPUDIR/gpu$i"; done
  if [ -n "$GPU_TYPE" ]; then gres_spec="gpu:$GPU_TYPE:$GPUS"; else gres_spec="gpu:$GPUS"; fi
  for i in $(seq 1 "$NODES"); do
    node_lines+="NodeName=$(node_name "$i") NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((SLURMD_PORT0 + i)) CPUs=$CPUS RealMemory=$MEM Gres=$gres_spec State=UNKNOWN"$'\n'
    names+="${names:+,}$(node_name "$i")"
  done
  local tres="gres/gpu"; [ -n "$GPU_TYPE" ] && tres="gres/gpu,gres/gpu:$GPU_TYPE"
  if [ ! -s "$ROOT$JWT_KEY" ]; then
    head -c 32 /dev/urandom >"$ROOT$JWT_KEY"; in_root chown slurm:slurm "$JWT_KEY"; chmod 600 "$ROOT$JWT_KEY"
  fi
  local slurm_uid slurm_gid
  slurm_uid=$(in_root id -u slurm); slurm_gid=$(in_root id -g slurm)

  if write_if_changed "$ROOT$ETC/slurm.conf" root:root 644 <<EOF
# generated by scripts/slurm-dev (SLURM_DEV_RELEASE=$REL) - second development cluster, Slurm $REL in $ROOT
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
CommunicationParameters=NoInAddrAny
SlurmctldPort=$CTLD_PORT
StateSaveLocation=$STATE
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
EnforcePartLimits=ALL
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=30,bf_max_job_test=100
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStorageEnforce=associations,limits,qos,safe
AccountingStorageTRES=$tres
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStoreFlags=job_comment
PriorityType=priority/multifactor
PriorityDecayHalfLife=0
PriorityUsageResetPeriod=NONE
PriorityCalcPeriod=1
PriorityWeightAge=1000
PriorityWeightFairshare=10000
PriorityWeightQOS=1000
PriorityWeightJobSize=1000
PriorityMaxAge=7-0
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log
$node_lines
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  then CONFIG_CHANGED=1; fi

  local gres_line="NodeName=$names Name=gpu File=$GPUDIR/gpu[0-$((GPUS - 1))]"
  [ "$GPUS" -eq 1 ] && gres_line="NodeName=$names Name=gpu File=$GPUDIR/gpu0"
  [ -n "$GPU_TYPE" ] && gres_line="$gres_line Type=$GPU_TYPE"
  if write_if_changed "$ROOT$ETC/gres.conf" root:root 644 <<<"$gres_line"; then CONFIG_CHANGED=1; fi

  if write_if_changed "$ROOT$ETC/slurmdbd.conf" "$slurm_uid:$slurm_gid" 600 <<EOF
# generated by scripts/slurm-dev (SLURM_DEV_RELEASE=$REL)
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=slurm
LogFile=$LOGDIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=$STORAGE_HOST
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
  then DBD_CONFIG_CHANGED=1; fi
}

# ---------------------------------------------------------------- daemons (host paths: $ROOT/...)
rpid_alive() { pid_alive "$ROOT$1"; }
rrecord() { mkdir -p "$ROOT$RUNDIR"; echo "$2" >"$ROOT$RUNDIR/$1.pid"; }
rstop_recorded() {
  local f="$ROOT$RUNDIR/$1.pid" pid
  pid=$(pid_of "$f")
  if [ -n "$pid" ] && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then log "$1 ($pid) ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}
rstop_pidfile() {  # a daemon from its own pid file in the root (config change restart)
  local pid; pid=$(pid_of "$ROOT$2")
  if [ -n "$pid" ] && alive "$pid"; then kill -TERM "$pid"; wait_gone "$pid" 20 || kill -KILL "$pid"; fi
  rm -f "$ROOT$RUNDIR/$1.pid"
}

start_root_munge() {
  if rpid_alive /run/munge/munged.pid; then return 0; fi
  mkdir -p "$ROOT/run/munge"; in_root chown munge:munge /run/munge; chmod 755 "$ROOT/run/munge"
  if [ ! -s "$ROOT/etc/munge/munge.key" ]; then
    in_root mungekey -c -f >/dev/null; in_root chown munge:munge /etc/munge/munge.key; chmod 600 "$ROOT/etc/munge/munge.key"
  fi
  in_root runuser -u munge -- /usr/sbin/munged
  wait_for 5 "munged (in the root)" rpid_alive /run/munge/munged.pid
  rrecord munged "$(pid_of "$ROOT/run/munge/munged.pid")"
  log "started munged (socket $ROOT/run/munge/munge.socket.2)"
}

start_root_slurmdbd() {
  if rpid_alive /run/slurmdbd.pid; then
    [ "$DBD_CONFIG_CHANGED" = 1 ] || return 0
    rstop_pidfile slurmdbd /run/slurmdbd.pid
  fi
  in_root /usr/sbin/slurmdbd
  wait_for 20 slurmdbd rpid_alive /run/slurmdbd.pid
  rrecord slurmdbd "$(pid_of "$ROOT/run/slurmdbd.pid")"
  wait_for 30 "slurmdbd to answer on $DBD_PORT" bash -c "(echo >/dev/tcp/127.0.0.1/$DBD_PORT) 2>/dev/null"
  log "started slurmdbd (port $DBD_PORT)"
}

SLURM_RESTARTED=0
start_root_slurm() {
  local i n need=0
  if [ "$CONFIG_CHANGED" = 1 ]; then
    for i in $(seq 1 26); do
      n=$(node_name "$i")
      [ -f "$ROOT/run/slurmd-$n.pid" ] && rstop_pidfile "slurmd-$n" "/run/slurmd-$n.pid"
    done
    rstop_pidfile slurmctld /run/slurmctld.pid
    stop_root_restd
  fi
  if ! rpid_alive /run/slurmctld.pid; then
    in_root /usr/sbin/slurmctld
    wait_for 20 slurmctld rpid_alive /run/slurmctld.pid
    rrecord slurmctld "$(pid_of "$ROOT/run/slurmctld.pid")"
    log "started slurmctld (port $CTLD_PORT)"; need=1
  fi
  wait_for 30 "slurmctld to answer" in_root scontrol ping
  for i in $(seq 1 "$NODES"); do
    n=$(node_name "$i")
    if ! rpid_alive "/run/slurmd-$n.pid"; then
      mkdir -p "$ROOT/var/spool/slurmd/$n"
      in_root /usr/sbin/slurmd -N "$n"
      wait_for 10 "slurmd $n" rpid_alive "/run/slurmd-$n.pid"
      rrecord "slurmd-$n" "$(pid_of "$ROOT/run/slurmd-$n.pid")"
      log "started slurmd $n (port $((SLURMD_PORT0 + i)))"; need=1
    fi
  done
  SLURM_RESTARTED=$need
}

stop_root_restd() { rstop_recorded slurmrestd-local; rstop_recorded slurmrestd-jwt; }
root_restd_local_ok() { curl -sf --unix-socket "$ROOT$REST_SOCK" "http://localhost/slurm/$REST_PING_FORMAT/ping"; }
root_restd_jwt_ok() { curl -s -o /dev/null -w '%{http_code}' "http://$REST_TCP/slurm/$REST_PING_FORMAT/ping" | grep -q 401; }
start_root_restd() {
  [ "$RESTD" = 1 ] || return 0
  in_root getent passwd slurmrestd >/dev/null || in_root useradd --system --no-create-home --shell /usr/sbin/nologin slurmrestd
  if ! pid_alive "$ROOT$RUNDIR/slurmrestd-local.pid"; then
    rm -f "$ROOT$REST_SOCK"
    (cd / && SLURMRESTD_SECURITY=$REST_LOCAL_SECURITY exec setsid env -u SLURM_CONF chroot "$ROOT" /usr/sbin/slurmrestd \
      -a rest_auth/local "unix:$REST_SOCK" </dev/null >>"$ROOT$LOGDIR/slurmrestd-local.log" 2>&1) &
    rrecord slurmrestd-local $!
    wait_for 10 "slurmrestd (unix socket)" root_restd_local_ok
    chmod 666 "$ROOT$REST_SOCK"
    log "started slurmrestd on unix:$ROOT$REST_SOCK"
  fi
  if ! pid_alive "$ROOT$RUNDIR/slurmrestd-jwt.pid"; then
    (cd / && SLURM_JWT=daemon exec setsid env -u SLURM_CONF chroot "$ROOT" /usr/sbin/slurmrestd -a rest_auth/jwt \
      -u slurmrestd -g slurmrestd "$REST_TCP" </dev/null >>"$ROOT$LOGDIR/slurmrestd-jwt.log" 2>&1) &
    rrecord slurmrestd-jwt $!
    wait_for 10 "slurmrestd (JWT, $REST_TCP)" root_restd_jwt_ok
    log "started slurmrestd on http://$REST_TCP (JWT)"
  fi
}

root_nodes_idle() {
  local states; states=$(in_root sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
  [ -n "$states" ] && ! grep -Eq 'down|drain|inval|unknown|not_responding|fail' <<<"$states" \
    && [ "$(in_root sinfo -h -N -o '%N' | sort -u | wc -l)" -ge "$NODES" ]
}
root_resume_nodes() {
  local n
  for n in $(in_root sinfo -h -N -t drain,down,inval,fail -o '%N' 2>/dev/null | sort -u); do
    in_root scontrol update nodename="$n" state=resume 2>/dev/null || true
  done
}
# a slurmstepd of job ID that runs in the root (job ids of the two clusters overlap)
root_stepd_of() {
  local p
  for p in $(pgrep -f "slurmstepd: \[$1\." || true); do
    [ "$(readlink "/proc/$p/root")" = "$ROOT" ] && return 0
  done
  return 1
}
root_clean_ghosts() {
  local id
  for id in $(in_root squeue -h -t RUNNING -o '%A' 2>/dev/null); do
    if ! root_stepd_of "$id"; then
      sleep 0.5
      root_stepd_of "$id" || { log "cancelling ghost job $id"; in_root scancel "$id" || true; }
    fi
  done
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "run as root (it builds a Debian root and starts system daemons)"
  make_root
  mount_root
  install_root_packages
  sync_users
  mkdir -p "$ROOT$RUNDIR" "$ROOT$LOGDIR"
  start_root_munge
  setup_db
  write_root_configs
  start_root_slurmdbd
  start_root_slurm
  local tries=0
  until root_nodes_idle; do
    tries=$((tries + 1))
    [ $((tries % 10)) -eq 1 ] && root_resume_nodes
    [ $tries -lt 300 ] || { in_root sinfo -N >&2; die "nodes not idle after 30 s (logs: $ROOT$LOGDIR)"; }
    sleep 0.1
  done
  [ "$SLURM_RESTARTED" = 1 ] && root_clean_ghosts
  start_root_restd
  log "up in $(elapsed) s: Slurm $(in_root sinfo -V | awk '{print $2}') in $ROOT, cluster $CLUSTER, $NODES nodes x $GPUS GPUs${GPU_TYPE:+ ($GPU_TYPE)}, partition debug, ctld :$CTLD_PORT, rest unix:$ROOT$REST_SOCK + http://$REST_TCP"
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "run as root"
  local purge=0; [ "${1:-}" = --purge ] && purge=1
  [ -d "$ROOT" ] || { log "no root at $ROOT: nothing to stop"; return 0; }
  if [ "$KEEP_JOBS" != 1 ] && rpid_alive /run/slurmctld.pid && in_root scontrol ping >/dev/null 2>&1; then
    local ids; ids=$(in_root squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
    if [ -n "${ids// /}" ]; then
      log "cancelling jobs: $ids"
      # shellcheck disable=SC2086
      in_root scancel $ids 2>/dev/null || true
      local n=100
      while [ -n "$(in_root squeue -h -t PD,R,CG,CF -o '%A' 2>/dev/null)" ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    fi
  fi
  stop_root_restd
  local f
  for f in "$ROOT$RUNDIR"/slurmd-*.pid; do [ -e "$f" ] && rstop_recorded "$(basename "$f" .pid)"; done
  rstop_recorded slurmctld
  rstop_recorded slurmdbd
  rstop_recorded munged
  rm -f "$ROOT/run/slurmctld.pid" "$ROOT/run/slurmdbd.pid" "$ROOT"/run/slurmd-*.pid "$ROOT/run/munge/munged.pid"
  if [ $purge = 1 ]; then
    rm -rf "${ROOT:?}${STATE:?}"/* "$ROOT"/var/spool/slurmd/* "$ROOT$LOGDIR/jobcomp.log"
    if mysql_tcp_ok; then mariadb --protocol=tcp -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $DB_NAME"
    elif mysql_socket_ok; then mariadb --protocol=socket -S "$MYSQL_SOCK" -uroot -e "DROP DATABASE IF EXISTS $DB_NAME"; fi
    log "purged the $REL cluster's state and its accounting database ($DB_NAME)"
  fi
  umount_root
  log "down in $(elapsed) s (the root stays cached at $ROOT)"
}

cmd_status() {
  local rc=0 name f pid
  [ -f "$DONE_MARK" ] || { echo "no Slurm $REL root at $ROOT (run: SLURM_DEV_RELEASE=$REL $0 up)"; return 1; }
  for name in munged slurmdbd slurmctld slurmrestd-local slurmrestd-jwt; do
    f="$ROOT$RUNDIR/$name.pid"; pid=$(pid_of "$f")
    if [ -n "$pid" ] && alive "$pid"; then printf '%-18s running (pid %s, in %s)\n' "$name" "$pid" "$ROOT"
    else printf '%-18s not running\n' "$name"; rc=1; fi
  done
  local any=0
  for f in "$ROOT$RUNDIR"/slurmd-*.pid; do
    [ -e "$f" ] || continue
    any=1; pid=$(pid_of "$f"); name=$(basename "$f" .pid)
    if alive "$pid"; then printf '%-18s running (pid %s)\n' "$name" "$pid"; else printf '%-18s not running\n' "$name"; rc=1; fi
  done
  [ $any = 1 ] || { echo "slurmd             not running"; rc=1; }
  if mountpoint -q "$ROOT/proc" && in_root scontrol ping >/dev/null 2>&1; then
    in_root sinfo -N -o '%N %T %G %C'
  else
    echo "slurmctld ($REL) does not answer"; rc=1
  fi
  return $rc
}

# build: only the cached part of `up` (root + packages), e.g. for a CI image; no daemons.
cmd_build() {
  [ "$(id -u)" = 0 ] || die "run as root"
  make_root
  local was_mounted=0; mountpoint -q "$ROOT/proc" && was_mounted=1
  mount_root
  install_root_packages
  [ $was_mounted = 1 ] || umount_root
  log "built $ROOT in $(elapsed) s"
}

cmd_sync_users() {
  [ "$(id -u)" = 0 ] || die "run as root"
  [ -f "$DONE_MARK" ] || die "no Slurm $REL root at $ROOT (run: SLURM_DEV_RELEASE=$REL $0 up)"
  sync_users
  log "host users (uid 1000-59999) and groups copied into $ROOT"
}
