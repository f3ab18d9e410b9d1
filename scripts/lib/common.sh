# shellcheck shell=bash
# Shared helpers for scripts/services: configuration, output, processes, packages.
# Sourced by scripts/services; expects SCRIPTS_DIR to be set.

# ---------------------------------------------------------------------------
# Configuration: everything derives from these variables.
# ---------------------------------------------------------------------------
# shellcheck disable=SC2034 # used by scripts/services
ALL_SERVICES=(kafka postgres redis mosquitto)

REPO_DIR="$(cd "$SCRIPTS_DIR/.." && pwd -P)"
IOT_STATE_DIR="$(realpath -m "${IOT_STATE_DIR:-$REPO_DIR/.local}")"
LOG_DIR="$IOT_STATE_DIR/log"
RUN_DIR="$IOT_STATE_DIR/run"

KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-iot}"
PG_PASSWORD="${PG_PASSWORD:-iot}"
PG_DATABASE="${PG_DATABASE:-iot}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${REDIS_PORT:-6379}"
MOSQUITTO_HOST="${MOSQUITTO_HOST:-127.0.0.1}"
MOSQUITTO_PORT="${MOSQUITTO_PORT:-1884}"
SERVICES_TIMEOUT="${SERVICES_TIMEOUT:-90}"
SERVICES_STOP_TIMEOUT="${SERVICES_STOP_TIMEOUT:-60}"
IOT_EXTERNAL_SERVICES="${IOT_EXTERNAL_SERVICES:-}"

# Local instances always listen on loopback only.
LOCAL_HOST=127.0.0.1
# Rotate a service log at start once it is larger than this.
LOG_ROTATE_BYTES=$((50 * 1024 * 1024))
# A service without a live process this long after launch has failed.
# shellcheck disable=SC2034 # used by scripts/services
LAUNCH_GRACE_S=8

for _v in KAFKA_PORT KAFKA_CONTROLLER_PORT PG_PORT REDIS_PORT MOSQUITTO_PORT \
  SERVICES_TIMEOUT SERVICES_STOP_TIMEOUT; do
  if [[ ! ${!_v} =~ ^[0-9]+$ ]]; then
    printf 'services: %s must be a number, got %q\n' "$_v" "${!_v}" >&2
    exit 2
  fi
done
unset _v

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
say() { printf '%s\n' "$*"; }
info() { printf '%s: %s\n' "$1" "${*:2}"; }
warn() { printf '%s: warning: %s\n' "$1" "${*:2}" >&2; }
die() {
  printf '%s\n' "$*" >&2
  exit 1
}

# Print the last lines of a log file, indented, to stderr.
show_log_tail() {
  local file=$1 lines=${2:-30}
  if [[ -s $file ]]; then
    printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" -- "$file" | sed 's/^/  | /' >&2
    printf -- '---\n' >&2
  else
    printf '(log %s is empty or missing)\n' "$file" >&2
  fi
}

# Monotonic-enough wall clock in microseconds, and formatting of a duration.
now_us() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%s' "$((10#$t))"
}
fmt_elapsed() { # start_us -> "8.1 s"
  local d=$(($(now_us) - $1))
  printf '%d.%d s' $((d / 1000000)) $((d / 100000 % 10))
}

# ---------------------------------------------------------------------------
# Service names
# ---------------------------------------------------------------------------
canonical_service() {
  case $1 in
  kafka) echo kafka ;;
  postgres | postgresql | pg) echo postgres ;;
  redis) echo redis ;;
  mosquitto | mqtt) echo mosquitto ;;
  *) return 1 ;;
  esac
}

is_external() {
  local s ext
  ext=" ${IOT_EXTERNAL_SERVICES//,/ } "
  for s in $ext; do
    if [[ $(canonical_service "$s" 2>/dev/null || echo "$s") == "$1" ]]; then
      return 0
    fi
  done
  return 1
}

svc_host() {
  local var
  var="$(svc_var_prefix "$1")_HOST"
  if is_external "$1"; then echo "${!var}"; else echo "$LOCAL_HOST"; fi
}
svc_port() {
  local var
  var="$(svc_var_prefix "$1")_PORT"
  echo "${!var}"
}
svc_var_prefix() {
  case $1 in
  kafka) echo KAFKA ;;
  postgres) echo PG ;;
  redis) echo REDIS ;;
  mosquitto) echo MOSQUITTO ;;
  esac
}
svc_log() { echo "$LOG_DIR/$1.log"; }

# ---------------------------------------------------------------------------
# Directories, locks, logs
# ---------------------------------------------------------------------------
ensure_state_dirs() {
  mkdir -p "$IOT_STATE_DIR" "$LOG_DIR" "$RUN_DIR"
}

# Serialise start/stop per state dir (parallel test workers may call start at once).
# The lock lives on fd 9; every daemon we launch must close it (9>&-).
take_state_lock() {
  ensure_state_dirs
  exec 9>"$RUN_DIR/services.lock"
  if ! flock -n 9; then
    say "services: another scripts/services run holds $RUN_DIR/services.lock, waiting..."
    flock -w $((SERVICES_TIMEOUT * 5)) 9 || die "services: timed out waiting for $RUN_DIR/services.lock"
  fi
}

rotate_log() {
  local f=$1 size
  [[ -f $f && ! -L $f ]] || return 0
  size=$(stat -c %s -- "$f")
  if ((size > LOG_ROTATE_BYTES)); then
    mv -f -- "$f" "$f.1"
  fi
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------
# Alive = exists and is not a zombie (an exited daemon stays a zombie until its parent, often
# PID 1, reaps it; some container inits do that lazily).
pid_alive() {
  local stat
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# pid_matches PID MARKER: the process' command line or working directory contains MARKER
# (a path inside the state dir), so a recycled pid is never taken for ours.
pid_matches() {
  local pid=$1 marker=$2 cmd cwd
  pid_alive "$pid" || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || cmd=
  [[ $cmd == *"$marker"* ]] && return 0
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=
  [[ -n $cwd && $cwd/ == "$marker"* ]] && return 0
  return 1
}

# read_pidfile FILE MARKER: print the pid if the file names a live process of ours.
read_pidfile() {
  local file=$1 marker=$2 pid
  [[ -r $file ]] || return 0
  pid=$(head -n 1 -- "$file" 2>/dev/null | tr -dc '0-9') || pid=
  if [[ -n $pid ]] && pid_matches "$pid" "$marker"; then
    echo "$pid"
  fi
}

# stop_pid SVC PID [TIMEOUT]: SIGTERM, wait for exit, then SIGKILL.
stop_pid() {
  local svc=$1 pid=$2 timeout=${3:-$SERVICES_STOP_TIMEOUT} t0 deadline
  t0=$(now_us)
  deadline=$((SECONDS + timeout))
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      warn "$svc" "pid $pid did not exit within ${timeout} s after SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local i
      for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
      done
      break
    fi
    sleep 0.1
  done
  info "$svc" "stopped (pid $pid, $(fmt_elapsed "$t0"))"
}

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------
tcp_open() { # host port
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Pids of processes listening on a TCP port (any address). Needs root for other users' pids.
port_listener_pids() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -H -ltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

port_in_use() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -H -ltn "sport = :$port" 2>/dev/null) ]]
  else
    tcp_open "$LOCAL_HOST" "$port"
  fi
}

pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | cut -c1-160 || true; }

# What kind of Debian-default (package-started) daemon is PID, if any.
debian_default_kind() {
  local pid=$1 cmd cwd exe
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || exe=
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=
  case $cmd in
  */postgres\ *config_file=/etc/postgresql/*)
    echo postgres
    return 0
    ;;
  *mosquitto\ *-c\ /etc/mosquitto/*)
    echo mosquitto
    return 0
    ;;
  esac
  if [[ $exe == */redis-server || $exe == */redis-check-rdb ]]; then
    if [[ $cwd == /var/lib/redis || $(cat /run/redis/redis-server.pid 2>/dev/null) == "$pid" ]]; then
      echo redis
    fi
  fi
}

# Stop one Debian-default daemon (started by its package or at boot), by pid.
stop_debian_default() {
  local pid=$1 kind=$2 cmd ver name
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
  info "$kind" "stopping Debian's default $kind daemon (pid $pid: ${cmd:0:100}); we run our own instance"
  if [[ $kind == postgres && $cmd =~ config_file=/etc/postgresql/([^/]+)/([^/]+)/ ]]; then
    ver=${BASH_REMATCH[1]}
    name=${BASH_REMATCH[2]}
    if command -v pg_ctlcluster >/dev/null 2>&1 && pg_ctlcluster "$ver" "$name" stop -m fast >/dev/null 2>&1; then
      return 0
    fi
  fi
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    case $kind in
    redis) systemctl stop redis-server.service >/dev/null 2>&1 || true ;;
    mosquitto) systemctl stop mosquitto.service >/dev/null 2>&1 || true ;;
    postgres) systemctl stop postgresql.service >/dev/null 2>&1 || true ;;
    esac
  fi
  if pid_alive "$pid"; then
    stop_pid "$kind" "$pid" 30 >/dev/null
  fi
}

# Stop every Debian-default redis/mosquitto/postgres daemon that runs now.
stop_all_debian_defaults() {
  local p pid kind
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    kind=$(debian_default_kind "$pid")
    if [[ -n $kind ]]; then
      stop_debian_default "$pid" "$kind"
    fi
  done
}

# ensure_port_free SVC PORT: free, or occupied by a Debian default (stopped), or die.
ensure_port_free() {
  local svc=$1 port=$2 pids pid kind
  port_in_use "$port" || return 0
  pids=$(port_listener_pids "$port")
  for pid in $pids; do
    kind=$(debian_default_kind "$pid")
    if [[ -n $kind ]]; then
      stop_debian_default "$pid" "$kind"
    fi
  done
  port_in_use "$port" || return 0
  pid=$(port_listener_pids "$port" | head -n 1)
  if [[ -n $pid ]]; then
    die "$svc: port $port is already in use by pid $pid ($(pid_cmdline "$pid")), which is not ours: stop it, or choose another port ($(svc_var_prefix "$svc")_PORT), or list $svc in IOT_EXTERNAL_SERVICES"
  fi
  die "$svc: port $port is already in use by another process: stop it, or choose another port, or list $svc in IOT_EXTERNAL_SERVICES"
}

# ---------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_MARKER='# iot-monitoring scripts/services: temporary, blocks daemon starts during apt-get install'
POLICY_STATE=none # none | kept | created | replaced
APT_UPDATED=0

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

cleanup_policy_rc_d() {
  case $POLICY_STATE in
  created) rm -f "$POLICY_RC_D" ;;
  replaced) mv -f "$POLICY_RC_D.iot-backup" "$POLICY_RC_D" ;;
  esac
  POLICY_STATE=none
}

# Keep package postinst scripts from starting Debian's default daemons
# (postgres main cluster on 5432, redis on 6379, mosquitto on 1883).
block_daemon_starts() {
  local rc=0
  if [[ -e $POLICY_RC_D ]] && grep -qF "$POLICY_MARKER" "$POLICY_RC_D"; then
    # Left over from an interrupted run: ours, remove it afterwards (restore a backup if any).
    if [[ -e $POLICY_RC_D.iot-backup ]]; then POLICY_STATE=replaced; else POLICY_STATE=created; fi
    return 0
  fi
  if [[ -e $POLICY_RC_D ]]; then
    "$POLICY_RC_D" postgresql start >/dev/null 2>&1 || rc=$?
    if ((rc == 101)); then
      POLICY_STATE=kept # an existing policy already forbids starts; leave it alone
      return 0
    fi
    cp -a "$POLICY_RC_D" "$POLICY_RC_D.iot-backup"
    POLICY_STATE=replaced
  else
    POLICY_STATE=created
  fi
  printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARKER" >"$POLICY_RC_D"
  chmod 0755 "$POLICY_RC_D"
}

on_exit() {
  cleanup_policy_rc_d
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# apt_install PKG...: install the missing ones (root + apt-get), or one clear line and exit.
apt_install() {
  local missing=() p t0 systemd_units=()
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "services: missing packages ${missing[*]}: apt-get install ${missing[*]} (or run scripts/services as root to install them automatically)"
  fi
  ensure_state_dirs
  local alog="$LOG_DIR/install.log"
  t0=$(now_us)
  # One installer at a time on this machine (two state dirs may start at once).
  exec 8>/var/lock/iot-monitoring-services-install.lock
  flock -w 600 8 || die "services: timed out waiting for /var/lock/iot-monitoring-services-install.lock"
  # Re-check: another run may have installed them meanwhile.
  local still=()
  for p in "${missing[@]}"; do
    pkg_installed "$p" || still+=("$p")
  done
  if ((${#still[@]})); then
    say "install: apt-get install ${still[*]} (log: $alog)"
    block_daemon_starts
    if ((APT_UPDATED == 0)); then
      say "install: apt-get update..."
      if ! apt-get -o DPkg::Lock::Timeout=300 update >>"$alog" 2>&1; then
        show_log_tail "$alog" 30
        die "install: apt-get update failed (see $alog)"
      fi
      APT_UPDATED=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
      --no-install-recommends "${still[@]}" 2>&1 | tee -a "$alog" |
      awk '/^Need to get /{print "install: " $0; fflush()} /^Setting up /{print "install:   " $0; fflush()}'; then
      cleanup_policy_rc_d
      show_log_tail "$alog" 30
      die "install: apt-get install ${still[*]} failed (see $alog)"
    fi
    cleanup_policy_rc_d
    # Fresh installs: keep Debian's default daemons from starting at boot on systemd hosts.
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
      for p in "${still[@]}"; do
        case $p in
        redis-server) systemd_units+=(redis-server.service) ;;
        mosquitto) systemd_units+=(mosquitto.service) ;;
        postgresql-15) systemd_units+=(postgresql.service) ;;
        esac
      done
      if ((${#systemd_units[@]})); then
        systemctl disable --now "${systemd_units[@]}" >/dev/null 2>&1 || true
      fi
    fi
    # ...and make sure none is left running (would clash with our ports or with 1883).
    stop_all_debian_defaults
    say "install: done ($(fmt_elapsed "$t0"))"
  fi
  exec 8>&-
}

# need_cmd CMD "what to install": one clear line when a command is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}
