#!/usr/bin/env bash
# A Docker engine for oversold's docker-driver tests and CI, on a Debian machine, as root.
#
#   scripts/docker-engine.sh start    install docker.io if dockerd is missing, start an engine
#                                     if none answers, wait until `docker info` works (default)
#   scripts/docker-engine.sh stop     stop the engine THIS script started (by its pidfile), nothing else
#   scripts/docker-engine.sh status   exit 0 if an engine answers
#
# Idempotent: `start` on a machine whose engine already answers does nothing and
# says so; `stop` leaves alone an engine it did not start. The engine gets no
# bridge and touches no iptables (containers run with --network host only), its own
# data root, exec root and pidfile, and logs to $OVERSOLD_DOCKER_LOG.
#
# The last line `start` prints is machine-readable, for test fixtures:
#   engine: already-running          an engine answered before we did anything
#   engine: started pid=<pid>        this call started dockerd with that pid
set -euo pipefail

ROOT="${OVERSOLD_DOCKER_ROOT:-/var/lib/oversold-docker}"
EXEC_ROOT="${OVERSOLD_DOCKER_EXEC_ROOT:-/run/oversold-docker}"
PIDFILE="${OVERSOLD_DOCKER_PIDFILE:-/run/oversold-dockerd.pid}"
LOG="${OVERSOLD_DOCKER_LOG:-/var/log/oversold-dockerd.log}"
WAIT_S="${OVERSOLD_DOCKER_WAIT_S:-60}"

say() { echo "docker-engine: $*" >&2; }

engine_answers() {
  command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

# The pid in our pidfile, if that process is still a dockerd (a pid can be reused).
our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "dockerd" || return 1
  echo "$pid"
}

install_engine() {
  if command -v dockerd >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    say "dockerd is missing and we are not root: install docker.io (Debian) first"
    exit 1
  fi
  say "dockerd missing: installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps it to the engine, containerd and runc
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  command -v dockerd >/dev/null 2>&1 || { say "docker.io installed but no dockerd on PATH"; exit 1; }
}

start_engine() {
  if engine_answers; then
    say "an engine already answers; leaving it alone"
    echo "engine: already-running"
    return 0
  fi
  install_engine
  if ! command -v docker >/dev/null 2>&1; then
    say "no docker client on PATH"; exit 1
  fi
  if pid="$(our_pid)"; then
    say "our dockerd (pid $pid) is running but not answering yet; waiting for it"
  else
    # the engine listens where the client will look: DOCKER_HOST if it names a unix
    # socket, else the default socket; never on TCP (loopback-only machines, no TLS)
    local host_args=()
    case "${DOCKER_HOST:-}" in
      "") ;;
      unix://*) host_args=(--host="$DOCKER_HOST") ;;
      *) say "DOCKER_HOST=$DOCKER_HOST is not a unix socket: start that engine yourself"; exit 1 ;;
    esac
    mkdir -p "$ROOT" "$EXEC_ROOT" "$(dirname "$LOG")" "$(dirname "$PIDFILE")"
    rm -f "$PIDFILE"
    # setsid: its own session, so a Ctrl-C to the caller does not reach the engine
    setsid dockerd "${host_args[@]}" \
      --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      --data-root="$ROOT" --exec-root="$EXEC_ROOT" --pidfile="$PIDFILE" \
      >>"$LOG" 2>&1 </dev/null &
    pid=$!
    disown "$pid" 2>/dev/null || true
    say "started dockerd pid $pid (log: $LOG, data root: $ROOT)"
  fi
  local deadline=$((SECONDS + WAIT_S))
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd exited; last lines of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "dockerd did not answer within ${WAIT_S}s; stopping it (pid $pid); last lines of $LOG:"
      tail -n 30 "$LOG" >&2 || true
      kill -TERM "$pid" 2>/dev/null || true  # ours, just started: leave nothing half-up behind
      exit 1
    fi
    sleep 0.5
  done
  # dockerd's own pidfile is the authority (setsid may have forked in between)
  pid="$(our_pid || echo "$pid")"
  echo "engine: started pid=$pid"
}

stop_engine() {
  local pid
  if ! pid="$(our_pid)"; then
    say "no engine started by this script is running; nothing to stop"
    return 0
  fi
  say "stopping dockerd pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped"; return 0; }
    sleep 0.5
  done
  say "dockerd pid $pid did not stop within 30s"
  exit 1
}

case "${1:-start}" in
  start) start_engine ;;
  stop) stop_engine ;;
  status) engine_answers ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
