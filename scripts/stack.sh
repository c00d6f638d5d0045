#!/usr/bin/env bash
# The Momentum production stack on one machine, in the background:
#   PostgreSQL :5432 (the machine's; started only if down)   Redis :6379 (idem)
#   pgbouncer  :6432 transaction pooling (ops/pgbouncer)     Prometheus :9090 (ops/prometheus)
#   the app    :8000 2 workers, through pgbouncer, APP_ENV=production
#
#   scripts/stack.sh up        idempotent: installs/starts what is missing, migrates, seeds
#   scripts/stack.sh down      stops only what this script started (pids under var/stack/)
#   scripts/stack.sh status    what runs where
#   scripts/stack.sh restart   restart the app only (after a code change), then `up`
#
# Overrides (env): STACK_DIR (var/stack), STACK_PYTHON (.venv/bin/python), STACK_DB (momentum),
#   STACK_APP_PORT (8000), STACK_WORKERS (2), STACK_PGBOUNCER_PORT (6432),
#   STACK_PROMETHEUS_PORT (9090), STACK_REDIS_PORT (6379), STACK_READY_TIMEOUT (90 s),
#   STACK_CACHE=off: serve a second, cache-disabled app (CACHE_ENABLED=false) on
#   STACK_APP_PORT (default 8001 then) next to the normal one, for comparisons.
#   STACK_DIRECT=on: serve a second app that connects to PostgreSQL directly (no pgbouncer,
#   DATABASE_POOLER=false) on STACK_APP_PORT (default 8002 then), for direct vs pooled pairs.
#   STACK_SKIP_APP=1: everything but migrate/seed/serve (infrastructure only).
# The app inherits the caller's environment, so settings such as LOGIN_RATE_LIMIT or
# COACH_RATE_LIMIT_PER_MINUTE can be given on the command line (scripts/loadtest.py does).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${STACK_DIR:-$ROOT/var/stack}"
PY="${STACK_PYTHON:-$ROOT/.venv/bin/python}"
DB="${STACK_DB:-momentum}"
CACHE="${STACK_CACHE:-on}"
DIRECT="${STACK_DIRECT:-off}"
if [[ "$CACHE" == "off" ]]; then APP_PORT="${STACK_APP_PORT:-8001}"
elif [[ "$DIRECT" == "on" ]]; then APP_PORT="${STACK_APP_PORT:-8002}"
else APP_PORT="${STACK_APP_PORT:-8000}"; fi
WORKERS="${STACK_WORKERS:-2}"
PGB_PORT="${STACK_PGBOUNCER_PORT:-6432}"
PROM_PORT="${STACK_PROMETHEUS_PORT:-9090}"
READY_TIMEOUT="${STACK_READY_TIMEOUT:-90}"
PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT="${STACK_REDIS_PORT:-6379}"
DIRECT_URL="postgresql+asyncpg://postgres@$PG_HOST:$PG_PORT/$DB"
POOLED_URL="postgresql+asyncpg://postgres@$PG_HOST:$PGB_PORT/$DB"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
is_root() { [[ "$(id -u)" == 0 ]]; }

# --- which processes are ours --------------------------------------------------------------
# A pid file counts only if the pid is alive AND its command line matches. If var/ was wiped
# (make clean) while the stack ran, processes are found again by a marker only we set: the
# runtime config path in their argv (pgbouncer, Prometheus) or MOMENTUM_STACK_APP in the
# environment (the app). Redis and PostgreSQL are never looked up that way.
pid_of() {  # pid_of NAME PATTERN -> pid from $RUN/NAME.pid if alive and matching
  local file="$RUN/$1.pid" pid cmd
  [[ -s "$file" ]] || return 1
  pid="$(head -n1 "$file" | tr -dc 0-9)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" || return 1
  [[ "$cmd" =~ $2 ]] || return 1
  echo "$pid"
}
find_by_argv() {  # first pid whose command line contains $1 (bash match: no grep in argv)
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
    if [[ "$cmd" == *"$1"* ]]; then echo "${p#/proc/}"; return 0; fi
  done
  return 1
}
app_leaders() {  # "pid name" of every app process-group leader started from this $RUN
  local p pid env name
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    env="$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null)" || continue
    name="$(sed -n "s#^MOMENTUM_STACK_APP=$RUN/##p" <<<"$env")"
    [[ -n "$name" ]] || continue
    [[ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]] && echo "$pid $name"
  done
  return 0
}
ours() {  # ours COMPONENT -> pid of the running instance this script started
  case "$1" in
    pgbouncer) pid_of pgbouncer/pgbouncer pgbouncer || find_by_argv "$RUN/pgbouncer/pgbouncer.ini" ;;
    prometheus) pid_of prometheus prometheus ||
      find_by_argv "--config.file=$RUN/prometheus/prometheus.yml" ;;
    redis) pid_of redis redis-server ;;
    app-*) pid_of "$1" "app serve" || app_leaders | awk -v n="$1" '$2 == n {print $1; f=1} END {exit !f}' ;;
    *) return 1 ;;
  esac
}
app_names() {  # every app-PORT this $RUN knows of: pid files and live marked processes
  {
    for f in "$RUN"/app-*.pid; do [[ -e "$f" ]] && basename "$f" .pid; done
    app_leaders | awk '{print $2}'
  } | sort -u
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
  log "$what: ready"
}
stop_pid() {  # stop_pid NAME PID [GROUP] -> SIGTERM (the process group if GROUP), wait, SIGKILL
  local name="$1" pid="$2" target="$2"
  [[ "${3:-}" == group ]] && target="-$2"
  kill -TERM -- "$target" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name ($pid) still running after 10 s: SIGKILL"
    kill -KILL -- "$target" 2>/dev/null || true
  fi
  log "$name ($pid) stopped"
}

# --- packages -----------------------------------------------------------------------------
ensure_packages() {
  local missing=()
  command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
  command -v prometheus >/dev/null || missing+=(prometheus)
  ((${#missing[@]})) || return 0
  is_root || die "missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    log "apt-get install failed; apt-get update once, then retry"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  # On a systemd machine the packages start their own pgbouncer (:6432) and prometheus
  # (:9090) with /etc configs; we just installed them, so they are ours to switch off.
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now "${missing[@]}" 2>/dev/null || true
  fi
}
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

# --- PostgreSQL and Redis: the machine's own; started (and later stopped) only if down ------
pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -U postgres; }
ensure_postgres() {
  if pg_ready; then log "PostgreSQL :$PG_PORT already running (not ours)"; return; fi
  local version
  # shellcheck disable=SC2012  # cluster versions are plain numbers
  version="$(ls /etc/postgresql | sort -V | tail -n1)"
  [[ -n "$version" ]] || die "no PostgreSQL cluster under /etc/postgresql"
  log "starting PostgreSQL $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  echo "$version" >"$RUN/postgresql.started"
  wait_for 30 "PostgreSQL :$PG_PORT" pg_ready || die "PostgreSQL did not come up"
}
redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
ensure_redis() {
  if redis_ready; then log "Redis :$REDIS_PORT already running (not ours)"; return; fi
  log "starting Redis :$REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
    --pidfile "$RUN/redis.pid"
  wait_for 15 "Redis :$REDIS_PORT" redis_ready || die "Redis did not come up"
}
ensure_database() {
  if [[ "$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atqc \
    "select 1 from pg_database where datname = '$DB'")" != 1 ]]; then
    log "creating database $DB"
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -qc "create database \"$DB\""
  fi
}

# --- pgbouncer ------------------------------------------------------------------------------
pgb_ready() { psql -h 127.0.0.1 -p "$PGB_PORT" -U postgres -Atqc 'select 1' "$DB" | grep -q 1; }
start_pgbouncer() {
  local dir="$RUN/pgbouncer" pid
  mkdir -p "$dir"
  # The ops file ends in [pgbouncer]; lines after %include stay in that section. A new
  # [pgbouncer] header here would reset every setting to its default.
  cat >"$dir/pgbouncer.ini" <<EOF
;; Generated by scripts/stack.sh; edit ops/pgbouncer/pgbouncer.ini instead.
%include $ROOT/ops/pgbouncer/pgbouncer.ini
listen_port = $PGB_PORT
auth_file = $ROOT/ops/pgbouncer/userlist.txt
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  local user_args=()
  if is_root; then  # pgbouncer refuses to run as root; Debian's unit runs it as postgres
    user_args=(-u postgres)
    chown -R postgres: "$dir"  # also after a wipe of var/: it reopens its log on reload
  fi
  if pid="$(ours pgbouncer)"; then
    kill -HUP "$pid"  # reload the config (idempotent)
    log "pgbouncer :$PGB_PORT already running (ours, pid $pid; config reloaded)"
    wait_for 10 "pgbouncer :$PGB_PORT" pgb_ready || die "pgbouncer did not survive its reload"
    return
  fi
  port_open "$PGB_PORT" && die "port $PGB_PORT is taken by a process we did not start"
  log "starting pgbouncer :$PGB_PORT"
  # setsid: its own session, so nothing that signals the caller's group (make, CI, a closed
  # terminal) reaches it; -d daemonizes and writes the pidfile.
  setsid "$PGBOUNCER" -d "${user_args[@]}" "$dir/pgbouncer.ini"
  wait_for 15 "pgbouncer :$PGB_PORT" pgb_ready || {
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    die "pgbouncer did not come up"
  }
}

# --- Prometheus -----------------------------------------------------------------------------
prom_ready() { curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready"; }
start_prometheus() {
  local dir="$RUN/prometheus" pid
  mkdir -p "$dir/data"
  # Runtime copy of ops/prometheus/prometheus.yml with this run's ports and absolute rule paths.
  sed -e "s#127.0.0.1:8000#127.0.0.1:$APP_PORT_MAIN#; s#127.0.0.1:9090#127.0.0.1:$PROM_PORT#" \
    -e "s#^\(  - \)rules/#\1$ROOT/ops/prometheus/rules/#" \
    "$ROOT/ops/prometheus/prometheus.yml" >"$dir/prometheus.yml"
  promtool check config "$dir/prometheus.yml" >/dev/null || die "invalid $dir/prometheus.yml"
  local run_as=()
  if is_root && id prometheus >/dev/null 2>&1; then  # like Debian's unit: not as root
    chown -R prometheus: "$dir"
    run_as=(setpriv --reuid=prometheus --regid=prometheus --init-groups)
  fi
  if pid="$(ours prometheus)"; then
    if [[ -d "$dir/data/wal" ]]; then
      kill -HUP "$pid"
      log "Prometheus :$PROM_PORT already running (ours, pid $pid; config reloaded)"
      return
    fi
    log "Prometheus $pid lost its data dir (var/ wiped?): restarting it"
    stop_pid prometheus "$pid" group
  fi
  port_open "$PROM_PORT" && die "port $PROM_PORT is taken by a process we did not start"
  log "starting Prometheus :$PROM_PORT"
  setsid "${run_as[@]}" prometheus \
    --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=7d \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-lifecycle \
    </dev/null >>"$dir/prometheus.log" 2>&1 &
  echo $! >"$RUN/prometheus.pid"
  wait_for 30 "Prometheus :$PROM_PORT" prom_ready || {
    tail -n 20 "$dir/prometheus.log" >&2 || true
    die "Prometheus did not come up"
  }
}

# --- the app --------------------------------------------------------------------------------
secret_key() {
  if [[ ! -s "$RUN/secret" ]]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(48))' >"$RUN/secret")
  fi
  cat "$RUN/secret"
}
app_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/readyz"; }
migrate_and_seed() {
  [[ -x "$PY" ]] || die "no python at $PY (create the venv first: make install)"
  log "migrating $DB directly on :$PG_PORT"
  DATABASE_URL="$DIRECT_URL" DATABASE_DIRECT_URL="$DIRECT_URL" DATABASE_POOLER=false \
    APP_ENV=production SECRET_KEY="$(secret_key)" "$PY" -m app db upgrade
  log "seeding (--scale load; idempotent)"
  DATABASE_URL="$DIRECT_URL" DATABASE_DIRECT_URL="$DIRECT_URL" DATABASE_POOLER=false \
    APP_ENV=production SECRET_KEY="$(secret_key)" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
    "$PY" -m app seed --scale load
  # This machine's PostgreSQL runs with autovacuum off: without this, the dead rows of every
  # earlier load run (6k in 500 challenge rows after a day of runs) slowed the next one.
  log "vacuum (analyze) $DB"
  psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -qc "vacuum (analyze)" "$DB"
}
start_app() {
  local name="app-$APP_PORT" pid cache_enabled=true
  [[ "$CACHE" == off ]] && cache_enabled=false
  if pid="$(ours "$name")"; then
    log "app :$APP_PORT already running (ours, pid $pid)"
  else
    port_open "$APP_PORT" && die "port $APP_PORT is taken by a process we did not start"
    launch_app "$name" "$cache_enabled"
  fi
  wait_for "$READY_TIMEOUT" "app :$APP_PORT /readyz" app_ready || {
    tail -n 30 "$RUN/$name.log" >&2 || true
    curl -sS --max-time 5 "http://127.0.0.1:$APP_PORT/readyz" >&2 || true
    die "the app did not answer /readyz within ${READY_TIMEOUT}s (log: $RUN/$name.log)"
  }
}
launch_app() {
  local name="$1" cache_enabled="$2" db_url="$POOLED_URL" pooler=true via="through pgbouncer :$PGB_PORT"
  if [[ "$DIRECT" == on ]]; then db_url="$DIRECT_URL" pooler=false via="directly on PostgreSQL :$PG_PORT"; fi
  log "serving the app on :$APP_PORT ($WORKERS workers, cache $CACHE, $via)"
  # Multiprocess metrics: one fresh directory per app, emptied on every start (files left by
  # dead workers would otherwise keep adding their old counts to /metrics).
  local metrics_dir="$RUN/$name.metrics"
  rm -rf "$metrics_dir"
  mkdir -p "$metrics_dir"
  # setsid: its own process group, so `down` stops the master and its workers together.
  env MOMENTUM_STACK_APP="$RUN/$name" \
    DATABASE_URL="$db_url" DATABASE_POOLER="$pooler" DATABASE_DIRECT_URL="$DIRECT_URL" \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" APP_ENV=production SECRET_KEY="$(secret_key)" \
    CACHE_ENABLED="$cache_enabled" PROMETHEUS_MULTIPROC_DIR="$metrics_dir" \
    setsid "$PY" -m app serve --host 127.0.0.1 --port "$APP_PORT" --workers "$WORKERS" \
    </dev/null >>"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

# --- commands -------------------------------------------------------------------------------
APP_PORT_MAIN="${STACK_APP_PORT:-8000}"
[[ "$CACHE" == off || "$DIRECT" == on ]] && APP_PORT_MAIN=8000  # Prometheus keeps scraping the main app

up() {
  mkdir -p "$RUN"
  ensure_packages
  ensure_postgres
  ensure_redis
  ensure_database
  start_pgbouncer
  start_prometheus
  if [[ "${STACK_SKIP_APP:-0}" != 1 ]]; then
    migrate_and_seed
    start_app
  fi
  status
}

down() {
  local pid name
  for name in $(app_names); do
    if pid="$(ours "$name")"; then stop_pid "$name" "$pid" group; fi
    rm -f "$RUN/$name.pid"
  done
  if pid="$(ours prometheus)"; then stop_pid prometheus "$pid" group; fi
  rm -f "$RUN/prometheus.pid"
  if pid="$(ours pgbouncer)"; then stop_pid pgbouncer "$pid"; fi
  if pid="$(ours redis)"; then stop_pid redis "$pid"; fi
  rm -f "$RUN/redis.pid"
  if [[ -s "$RUN/postgresql.started" ]]; then
    log "stopping PostgreSQL $(cat "$RUN/postgresql.started")/main (started by stack up)"
    pg_ctlcluster --skip-systemctl-redirect "$(cat "$RUN/postgresql.started")" main stop || true
    rm -f "$RUN/postgresql.started"
  fi
  log "down (PostgreSQL/Redis that were already running were left alone)"
}

line() { printf '  %-11s %-9s %-7s %s\n' "$@"; }
owner() { if "$@" >/dev/null 2>&1; then echo "started by stack"; else echo "machine's own"; fi; }
status() {
  local pid f port
  echo "Momentum stack ($RUN)"
  line COMPONENT STATE PID WHERE
  if pg_ready; then
    line postgresql up "-" "127.0.0.1:$PG_PORT  db $DB ($(owner test -s "$RUN/postgresql.started"))"
  else line postgresql down "-" "127.0.0.1:$PG_PORT"; fi
  if redis_ready; then
    line redis up "$(ours redis || echo -)" "redis://127.0.0.1:$REDIS_PORT/0 ($(owner ours redis))"
  else line redis down "-" "127.0.0.1:$REDIS_PORT"; fi
  if pid="$(ours pgbouncer)"; then
    line pgbouncer up "$pid" "127.0.0.1:$PGB_PORT  admin: psql -h 127.0.0.1 -p $PGB_PORT -U postgres pgbouncer"
  else line pgbouncer down "-" "127.0.0.1:$PGB_PORT"; fi
  if pid="$(ours prometheus)"; then
    line prometheus up "$pid" "http://127.0.0.1:$PROM_PORT  (targets: /targets, alerts: /alerts)"
  else line prometheus down "-" "127.0.0.1:$PROM_PORT"; fi
  local any=0
  for f in $(app_names); do
    port="${f#app-}"
    any=1
    if pid="$(ours "$f")"; then
      line "app" up "$pid" "http://127.0.0.1:$port  (/metrics, /readyz; log $RUN/$f.log)"
    else line "app" down "-" "127.0.0.1:$port (stale pid file)"; fi
  done
  ((any)) || line app down "-" "127.0.0.1:$APP_PORT"
  echo "  DATABASE_URL (app)        $POOLED_URL  DATABASE_POOLER=true"
  echo "  DATABASE_URL (migrations) $DIRECT_URL"
}

restart() {  # new app code: stop this app (STACK_APP_PORT) only, then `up`
  local name="app-$APP_PORT" pid
  if pid="$(ours "$name")"; then stop_pid "$name" "$pid" group; fi
  rm -f "$RUN/$name.pid"
  up
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  restart) restart ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|restart" >&2; exit 2 ;;
esac
