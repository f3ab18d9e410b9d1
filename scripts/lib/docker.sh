# shellcheck shell=bash
# Debian's Docker engine (docker.io): dockerd with its defaults, launched and stopped by pid.
# Sourced by scripts/docker and scripts/images, after common.sh.

DOCKER_PIDFILE="$RUN_DIR/docker.pid"
DOCKER_TIMEOUT="${DOCKER_TIMEOUT:-60}"
DOCKER_STOP_TIMEOUT="${DOCKER_STOP_TIMEOUT:-60}"
DOCKERD_OPTS="${DOCKERD_OPTS:-}"
# shellcheck disable=SC2034 # used by scripts/docker
DOCKER_SOCKET="${DOCKER_HOST:-unix:///var/run/docker.sock}"
DOCKERD_LAUNCHED=""

dockerd_bin() { command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd; }

# The engine answers an API call (whoever started it).
docker_answers() {
  command -v docker >/dev/null 2>&1 || return 1
  timeout 15 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

docker_server_version() { timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null || echo "?"; }

# The dockerd this script started (its command line names our pid file), if it runs.
dockerd_pid() { read_pidfile "$DOCKER_PIDFILE" "$DOCKER_PIDFILE"; }

docker_systemd() {
  [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1 &&
    systemctl cat docker.service >/dev/null 2>&1
}

docker_install() {
  if [[ ! -x $(dockerd_bin) ]] || ! command -v docker >/dev/null 2>&1; then
    apt_install docker.io
  fi
  [[ -x $(dockerd_bin) ]] || die "docker: dockerd not found: apt-get install docker.io"
  need_cmd docker "apt-get install docker.io"
  ((EUID == 0)) || docker_systemd ||
    die "docker: the engine is not running, and dockerd needs root: sudo scripts/docker start"
}

dockerd_launch() {
  local log opts
  log="$LOG_DIR/docker.log"
  rotate_log "$log"
  read -ra opts <<<"$DOCKERD_OPTS"
  rm -f "$DOCKER_PIDFILE"
  printf '\n=== %s scripts/docker: starting dockerd ===\n' "$(date -Is)" >>"$log"
  # setsid: own session, so a Ctrl-C or a test runner's process-group kill leaves the engine up.
  nohup setsid "$(dockerd_bin)" --pidfile "$DOCKER_PIDFILE" "${opts[@]}" \
    >>"$log" 2>&1 </dev/null 8>&- 9>&- &
  # dockerd writes the pid file itself (and refuses to start if one exists).
  DOCKERD_LAUNCHED=$!
  info docker "started dockerd (pid $DOCKERD_LAUNCHED, log $log), waiting for docker info..."
}

# docker_wait T0: poll `docker info` until it answers, the launched dockerd dies, or DOCKER_TIMEOUT.
docker_wait() {
  local t0=$1 begin=$SECONDS next=$((SECONDS + 15)) launched=$DOCKERD_LAUNCHED
  until docker_answers; do
    if [[ -n $launched ]] && ! pid_alive "$launched"; then
      printf 'docker: dockerd exited during startup (after %s)\n' "$(fmt_elapsed "$t0")" >&2
      show_log_tail "$LOG_DIR/docker.log" 30
      return 1
    fi
    if ((SECONDS - begin >= DOCKER_TIMEOUT)); then
      printf 'docker: no answer from docker info after %s s (DOCKER_TIMEOUT)\n' "$DOCKER_TIMEOUT" >&2
      [[ -z $launched ]] || show_log_tail "$LOG_DIR/docker.log" 30
      return 1
    fi
    if ((SECONDS >= next)); then
      info docker "still waiting ($((SECONDS - begin)) s)..."
      next=$((SECONDS + 15))
    fi
    sleep 0.5
  done
}

# Fail with one line when the engine does not answer.
require_docker() {
  docker_answers || die "docker: the engine does not answer (docker info): run scripts/docker start"
}
