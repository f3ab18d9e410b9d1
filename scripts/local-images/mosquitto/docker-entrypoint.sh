#!/bin/sh
# As the public image's entrypoint: as root, hand /mosquitto to the mosquitto user (the broker
# itself drops to it).
set -e
if [ "$(id -u)" = 0 ]; then
  chown -R mosquitto:mosquitto /mosquitto 2>/dev/null || true
fi
exec "$@"
