#!/bin/sh
# Entry point of the PostgreSQL stand-in image (scripts/base_images.sh): the part of the
# official postgres image's entry point that Comanda relies on. On an empty PGDATA it creates
# the cluster with POSTGRES_USER (default postgres) as superuser, password POSTGRES_PASSWORD
# (required) checked with scram-sha-256 over TCP, and the database POSTGRES_DB (default: the
# user's name); then it runs the server as PID 1. Started as root, it hands PGDATA to the
# postgres user and runs as that user; started as any other user (Kubernetes' runAsUser), it
# runs as that user, who must be able to write PGDATA.
set -eu

case "${1:-}" in -*) set -- postgres "$@" ;; esac
[ "${1:-}" = postgres ] || exec "$@"

: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres_entrypoint: POSTGRES_PASSWORD is not set; the database is not initialised" >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # A server on the Unix socket only, until the database exists.
    pg_ctl --pgdata="$PGDATA" --silent --wait -o "-c listen_addresses=''" start
    echo 'CREATE DATABASE :"db"' | psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 \
      --username="$user" --dbname=postgres --set=db="$db"
    pg_ctl --pgdata="$PGDATA" --silent --wait --mode=fast stop
  fi
  echo "postgres_entrypoint: initialised $PGDATA (user $user, database $db)"
fi

exec "$@"
