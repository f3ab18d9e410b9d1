# Two images from one file (docs/deploy-edge.md, docs/deploy-hub.md):
#   docker build --target edge -t iot-monitoring/edge:local .   # pip install ".[edge]" only
#   docker build --target hub  -t iot-monitoring/hub:local .    # pip install ".[hub]"
# Each install lives in its own virtual environment (/opt/venv), built in a builder stage and
# copied alone into a slim runtime stage: no compiler, pip, wheel cache or source tree there.
# The dependency layers depend on pyproject.toml only, so a code change rebuilds in seconds.
# Needs BuildKit (the default builder since Docker 23), with its built-in Dockerfile frontend: no
# `# syntax=` line, which would make BuildKit fetch a frontend image from a registry.
#
# Behind a TLS-intercepting proxy, give pip the CA bundle as a build secret; it is mounted only for
# the steps that download and never stored in a layer:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt --target edge ...

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# -- builder stages -----------------------------------------------------------------------------
# The runtime requirements of one extra, straight from pyproject.toml (the project's only list).
FROM python-base AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN for extra in edge hub; do \
      python -c 'import sys, tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(project["dependencies"] + project["optional-dependencies"][sys.argv[1]]))' \
        "$extra" > "/src/requirements-$extra.txt" || exit 1; \
    done

# A venv without pip or setuptools of its own: the base image's pip installs into it.
FROM python-base AS deps-edge
COPY --from=requirements /src/requirements-edge.txt /tmp/requirements.txt
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install -r /tmp/requirements.txt

FROM python-base AS deps-hub
COPY --from=requirements /src/requirements-hub.txt /tmp/requirements.txt
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install -r /tmp/requirements.txt

# The project itself as a wheel (build isolation fetches setuptools here, and only here).
FROM python-base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol/ protocol/
COPY iot_common/ iot_common/
COPY edge_gateway/ edge_gateway/
COPY hub/ hub/
COPY db/ db/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && pip wheel --no-deps --wheel-dir /wheels .

FROM deps-edge AS venv-edge
COPY --from=wheel /wheels /wheels
RUN pip --python /opt/venv/bin/python install --no-deps /wheels/*.whl

FROM deps-hub AS venv-hub
COPY --from=wheel /wheels /wheels
RUN pip --python /opt/venv/bin/python install --no-deps /wheels/*.whl

# -- runtime --------------------------------------------------------------------------------------
# The interpreter and an unprivileged user; the base image's own packaging tools go.
FROM python-base AS runtime
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
 && groupadd --system --gid 10001 iot \
 && useradd --system --uid 10001 --gid iot --home-dir /home/iot --create-home \
      --shell /usr/sbin/nologin iot
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /home/iot
LABEL org.opencontainers.image.licenses="Apache-2.0"

# The edge gateway: embedded MQTT broker (1883), status server (8081), buffer on a volume.
FROM runtime AS edge
COPY --from=venv-edge /opt/venv /opt/venv
RUN install -d -o iot -g iot -m 0750 /var/lib/iot-edge
# Container defaults (any of them can be overridden): the buffer on the data directory, and the
# hub's Kafka by its compose service name (a gateway on another host sets its own address).
ENV EDGE_BUFFER_PATH=/var/lib/iot-edge/buffer.db \
    EDGE_KAFKA_BOOTSTRAP=kafka:9092
LABEL org.opencontainers.image.title="iot-monitoring edge gateway" \
      org.opencontainers.image.description="MQTT in, validated, buffered durably, forwarded to Kafka"
USER 10001:10001
EXPOSE 1883 8081
# slim has no curl: Python's urllib asks the gateway's own status server.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('EDGE_HTTP_PORT', '8081') + '/healthz', timeout=4)"]
ENTRYPOINT ["iot-edge"]
CMD ["run"]

# The hub: `web` (dashboard and API on 8080) by default; `worker`, `migrate`, `user`, `token` too.
FROM runtime AS hub
COPY --from=venv-hub /opt/venv /opt/venv
RUN install -d -o iot -g iot -m 0750 /var/lib/iot-hub
# Listen on every interface inside the container; NiceGUI's file storage under /tmp, which stays
# writable when the root filesystem is read-only (Kubernetes mounts an emptyDir there).
ENV HUB_WEB_HOST=0.0.0.0 \
    NICEGUI_STORAGE_PATH=/tmp/nicegui
LABEL org.opencontainers.image.title="iot-monitoring hub" \
      org.opencontainers.image.description="Faust worker (Kafka to PostgreSQL and Redis), NiceGUI dashboard, REST and WebSocket API"
USER 10001:10001
EXPOSE 8080 6066
# For `web`; compose and Kubernetes give the worker its own check on HUB_WORKER_WEB_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HUB_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["iot-hub"]
CMD ["web"]
