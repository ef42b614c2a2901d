#!/bin/sh
# The entry point of the PostgreSQL base image deploy/images.sh makes from Debian's postgresql-15 when no registry
# gives postgres:15-alpine. It reads the variables the official image reads, so docker-compose.yml works with
# either: on an empty data directory it creates the cluster (POSTGRES_USER with POSTGRES_PASSWORD, password
# authentication from other hosts) and POSTGRES_DB, then runs the server in the foreground, listening on every
# address of the container.
set -eu
export PATH="/usr/lib/postgresql/15/bin:$PATH"
# the socket in /tmp: Debian's /var/run/postgresql is not in an image made from a chroot, and this runs unprivileged
export PGHOST=/tmp
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD to create the database" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses='' -c unix_socket_directories=/tmp" --wait start >/dev/null
  if [ "$db" != postgres ]; then createdb --username="$user" "$db"; fi
  pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
