# Sourced by scripts that need a PostgreSQL server of their own: start_throwaway_postgres starts
# one in a temporary directory on a free loopback port, exports SHOAL_TEST_POSTGRES with its URL,
# and stops and removes it when the calling script exits. PG_THROWAWAY_SETTINGS replaces its
# durability settings (default "-c fsync=off", for tests).

start_throwaway_postgres() {
  local initdb
  initdb=$(dpkg -L postgresql-15 2>/dev/null | grep '/bin/initdb$' | head -1 || true)
  [[ -n $initdb ]] || initdb=$(command -v initdb || true)
  if [[ -z $initdb ]]; then
    echo "postgres: initdb not found (apt-get install postgresql)" >&2
    return 1
  fi
  local bin
  bin=$(dirname "$initdb")
  PG_THROWAWAY_DIR=$(mktemp -d /tmp/shoal-pg.XXXXXX)
  mkdir -p "$PG_THROWAWAY_DIR/sock"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # PostgreSQL refuses to run as root: as root, run it as the postgres user.
  PG_THROWAWAY_AS=()
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres:postgres "$PG_THROWAWAY_DIR"
    PG_THROWAWAY_AS=(runuser -u postgres --)
  fi
  PG_THROWAWAY_CTL=$bin/pg_ctl
  "${PG_THROWAWAY_AS[@]}" "$initdb" -D "$PG_THROWAWAY_DIR/data" --auth=trust -U postgres >"$PG_THROWAWAY_DIR/initdb.log" 2>&1 \
    || { cat "$PG_THROWAWAY_DIR/initdb.log" >&2; return 1; }
  "${PG_THROWAWAY_AS[@]}" "$PG_THROWAWAY_CTL" -D "$PG_THROWAWAY_DIR/data" -l "$PG_THROWAWAY_DIR/server.log" -w \
    -o "-p $port -k $PG_THROWAWAY_DIR/sock -c listen_addresses=127.0.0.1 ${PG_THROWAWAY_SETTINGS:--c fsync=off}" start >/dev/null \
    || { cat "$PG_THROWAWAY_DIR/server.log" >&2; return 1; }
  trap stop_throwaway_postgres EXIT
  export SHOAL_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
  echo "== throwaway PostgreSQL on 127.0.0.1:$port ($PG_THROWAWAY_DIR)" >&2
}

stop_throwaway_postgres() {
  [[ -n ${PG_THROWAWAY_DIR:-} ]] || return 0
  "${PG_THROWAWAY_AS[@]}" "$PG_THROWAWAY_CTL" -D "$PG_THROWAWAY_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_THROWAWAY_DIR"
  PG_THROWAWAY_DIR=
}
