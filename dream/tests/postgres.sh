#!/usr/bin/env bash
# A PostgreSQL for the fleet tests: `postgres.sh URL_FILE PYTHON` writes its SQLAlchemy URL to URL_FILE.
# The machine's own server (127.0.0.1:5432, database test, trust auth) when it answers; otherwise
# Debian's postgresql is installed if missing and a throwaway cluster starts in a temp dir on a free port.
set -euo pipefail
out=$1
py=$2
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo

answers() {
  "$py" -c 'import sys, sqlalchemy as sa
sa.create_engine(sys.argv[1], connect_args={"connect_timeout": 3}).connect().close()' "$1" >/dev/null 2>&1
}

# An earlier run's throwaway cluster, while it still answers.
if [ -f "$out" ] && answers "$(cat "$out")"; then exit 0; fi
url=postgresql+psycopg://postgres@127.0.0.1:5432/test
if answers "$url"; then echo "$url" >"$out"; exit 0; fi

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
  echo "no PostgreSQL answers on 127.0.0.1:5432: installing Debian's postgresql"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
dir=$(mktemp -d /tmp/dream-pg.XXXXXX)
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# initdb refuses to run as root: as root the cluster belongs to the postgres user the package made.
as=()
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; as=(runuser -u postgres --); fi
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
"${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
echo "postgresql+psycopg://postgres@127.0.0.1:$port/test" >"$out"
echo "throwaway PostgreSQL for the tests: $dir (port $port; stop: pg_ctl -D $dir/data stop)"
