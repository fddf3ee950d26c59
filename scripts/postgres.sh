# Sourced by scripts/test: a throw-away PostgreSQL cluster for the tests
# that need one, in a temporary directory, stopped and removed when the
# shell exits. A DATABASE_URL already set names a server to use instead.
# Exports DATABASE_URL (with the cluster's password) and, for the tests
# that restart the server, IPGATE_PG_BIN and IPGATE_PG_DATA.
start_throwaway_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    echo "postgres: using DATABASE_URL" >&2
    return
  fi
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    # No server binaries: install Debian's (the check is initdb, not a
    # command on PATH, so ensure_packages cannot tell).
    echo "installing: postgresql" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  IPGATE_PG_DIR=$(mktemp -d /tmp/ipgate-pg.XXXXXX)
  # initdb refuses to run as root: the cluster belongs to nobody then.
  IPGATE_PG_RUN=()
  if [ "$(id -u)" -eq 0 ]; then
    chown nobody "$IPGATE_PG_DIR"
    IPGATE_PG_RUN=(runuser -u nobody --)
  fi
  local password port
  password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  printf '%s\n' "$password" >"$IPGATE_PG_DIR/pw"
  chown --reference="$IPGATE_PG_DIR" "$IPGATE_PG_DIR/pw"
  "${IPGATE_PG_RUN[@]}" "$bindir/initdb" -D "$IPGATE_PG_DIR/data" -U ipgate \
    --auth=scram-sha-256 --pwfile="$IPGATE_PG_DIR/pw" -E UTF8 >"$IPGATE_PG_DIR/initdb.log"
  rm -f "$IPGATE_PG_DIR/pw"
  # A free port: nothing answers on it.
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  cat >>"$IPGATE_PG_DIR/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$IPGATE_PG_DIR'
max_connections = 200
CONF
  "${IPGATE_PG_RUN[@]}" "$bindir/pg_ctl" -D "$IPGATE_PG_DIR/data" \
    -l "$IPGATE_PG_DIR/server.log" -w start >/dev/null
  trap stop_throwaway_postgres EXIT
  export DATABASE_URL="postgres://ipgate:$password@127.0.0.1:$port/postgres"
  export IPGATE_PG_BIN="$bindir" IPGATE_PG_DATA="$IPGATE_PG_DIR/data"
  echo "postgres: throw-away cluster on 127.0.0.1:$port ($IPGATE_PG_DIR)" >&2
}

stop_throwaway_postgres() {
  "${IPGATE_PG_RUN[@]}" "$IPGATE_PG_BIN/pg_ctl" -D "$IPGATE_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$IPGATE_PG_DIR"
}
