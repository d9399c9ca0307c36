#!/usr/bin/env bash
# Source this file: it leaves DATABASE_URL pointing at a PostgreSQL server that answers.
#   1. DATABASE_URL as given, if it answers and takes its credentials (psql `SELECT 1`);
#   2. the server on 127.0.0.1:5432 (user postgres, trust auth), if it answers and takes them;
#   3. a private cluster under $BSVMAPI_STATE/pg started from installed PostgreSQL binaries
#      (installing Debian's `postgresql` package first when none are installed and we are root);
#   4. otherwise it stops with a message naming what to install.
# After a private cluster was started, PG_PRIVATE_STOP holds the command that stops it.

_pg_answers() { # url: true when a server there accepts this URL's credentials (not only the port)
  if command -v psql >/dev/null 2>&1; then
    PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
  elif command -v pg_isready >/dev/null 2>&1; then
    # Without psql the credentials cannot be tried: a server that answers is taken.
    pg_isready -q -d "$1" -t 3
  else
    local hostport=${1#*@}; hostport=${hostport%%/*}
    local host=${hostport%%:*} port=${hostport##*:}
    [ "$port" = "$hostport" ] && port=5432
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    if _pg_answers "$DATABASE_URL"; then
      echo "postgres: using DATABASE_URL" >&2
      return 0
    fi
    echo "postgres: DATABASE_URL does not connect and authenticate; looking for another server" >&2
  fi
  local local_url="${PG_LOCAL_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  if _pg_answers "$local_url"; then
    export DATABASE_URL="$local_url"
    echo "postgres: using the server on 127.0.0.1:5432" >&2
    return 0
  fi

  local bindir
  if ! bindir=$(_pg_bindir); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "postgres: installing Debian package postgresql" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
    fi
    bindir=$(_pg_bindir) || {
      echo "postgres: no server answers and no PostgreSQL binaries are installed." >&2
      echo "          Install them (Debian: apt-get install postgresql) or set DATABASE_URL." >&2
      return 1
    }
  fi

  local state="${BSVMAPI_STATE:-$PWD/.stack}"
  local data="$state/pg" port="${PG_PRIVATE_PORT:-55432}"
  mkdir -p "$state"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: use the postgres system user (or create one).
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$state"
    run=(runuser -u postgres --)
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "postgres: creating a private cluster in $data" >&2
    "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! "${run[@]}" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp" start >/dev/null
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export PG_PRIVATE_STOP="${run[*]} $bindir/pg_ctl -D $data -m fast stop"
  echo "postgres: private cluster on 127.0.0.1:$port" >&2
}
