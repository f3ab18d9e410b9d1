#!/bin/bash
# As the public redis image's entrypoint: `redis-server` for a bare option or config file; as
# root, own /data and drop to redis; protected mode off unless a config file says otherwise.
set -euo pipefail

if [[ ${1:0:1} == - || $1 == *.conf ]]; then set -- redis-server "$@"; fi

if [[ $1 == redis-server && $(id -u) == 0 ]]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [[ $1 == redis-server ]]; then
  # The public image builds Redis with protected mode off by default; a config file still wins.
  if [[ ${2:-} == "" || ${2:0:1} == - ]]; then
    set -- redis-server --protected-mode no "${@:2}"
  fi
  if [[ $(umask) == 0022 ]]; then umask 0077; fi
fi

exec "$@"
