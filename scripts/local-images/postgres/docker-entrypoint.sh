#!/bin/bash
# As the public postgres image's entrypoint: as root, own the data directory and drop to postgres;
# on an empty data directory, initdb with POSTGRES_USER/POSTGRES_PASSWORD, create POSTGRES_DB,
# run /docker-entrypoint-initdb.d; then exec the command.
set -Eeuo pipefail

if [[ ${1:0:1} == - ]]; then set -- postgres "$@"; fi

if [[ $1 == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA"
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [[ $1 == postgres && ! -s $PGDATA/PG_VERSION ]]; then
  POSTGRES_USER=${POSTGRES_USER:-postgres}
  POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [[ -z ${POSTGRES_PASSWORD:-} && $auth != trust ]]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
       (Or POSTGRES_HOST_AUTH_METHOD=trust, which allows any connection without a password.)
MSG
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
    ${POSTGRES_INITDB_ARGS:-}
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  # A server on the socket only, for the set-up.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [[ $POSTGRES_DB != postgres ]]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
    *.sh)
      echo "$0: running $f"
      # shellcheck disable=SC1090
      if [[ -x $f ]]; then "$f"; else . "$f"; fi
      ;;
    *.sql)
      echo "$0: running $f"
      "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
      ;;
    *.sql.gz)
      echo "$0: running $f"
      gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB"
      ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
