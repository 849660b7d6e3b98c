# The streamworker worker image: a venv with the worker, run as a non-root user under tini.
#
# Built here with no registry (Debian's packages and PyPI only):
#   bash dev/packaging/build-base-image.sh     # mmdebstrap → docker import → streamworker-base/python:bookworm
#   bash dev/packaging/build-worker-image.sh   # this file → streamworker/worker:local (cached by input hash)
# With a registry, any Debian-based Python 3.11+ image will do as the base, e.g.
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm -t streamworker/worker:local .
#
# Networking: the worker binds /health and /metrics to 127.0.0.1:6066 by default, which
# inside a container nobody else can reach. Set STREAMWORKER_HTTP_HOST=0.0.0.0 explicitly
# to publish it (docker-compose.yml and the Helm chart do); the image keeps the safe default.
#
# Docker access: the worker drives a Docker daemon (socket, DinD or remote TLS — see the
# README). With the host's socket mounted, add the socket's group to the container
# (`--group-add "$(stat -c %g /var/run/docker.sock)"`): the worker does not run as root.
# The runtime images (streamworker-runtime/<lang>:bookworm) must exist on that daemon.
ARG BASE_IMAGE=streamworker-base/python:bookworm

# --- builder: the venv with every dependency from PyPI, then the streamworker wheel ----
FROM ${BASE_IMAGE} AS builder
# A PEM bundle to trust in addition to the base image's CAs, for a TLS-intercepting proxy
# between the build and PyPI. Used by this stage only: it never reaches the final image.
ARG PIP_EXTRA_CA_PEM=""
ARG PIP_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120
WORKDIR /src
# Dependencies first (from pyproject.toml alone), so a code change reuses this layer.
COPY pyproject.toml ./
RUN set -eu; \
    if [ -n "$PIP_EXTRA_CA_PEM" ]; then \
      { cat /etc/ssl/certs/ca-certificates.crt; printf '%s\n' "$PIP_EXTRA_CA_PEM"; } > /tmp/ca.pem; \
      export PIP_CERT=/tmp/ca.pem; \
    fi; \
    if [ -z "$PIP_INDEX_URL" ]; then unset PIP_INDEX_URL; fi; \
    python3 -m venv /opt/streamworker; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt; \
    /opt/streamworker/bin/pip install -q -r /tmp/requirements.txt
COPY README.md ./
COPY streamworker ./streamworker
COPY migrations ./migrations
# The wheel has no repository: the Alembic scripts go where audit/migrate.py looks first.
RUN set -eu; \
    if [ -n "$PIP_EXTRA_CA_PEM" ]; then \
      { cat /etc/ssl/certs/ca-certificates.crt; printf '%s\n' "$PIP_EXTRA_CA_PEM"; } > /tmp/ca.pem; \
      export PIP_CERT=/tmp/ca.pem; \
    fi; \
    if [ -z "$PIP_INDEX_URL" ]; then unset PIP_INDEX_URL; fi; \
    /opt/streamworker/bin/pip wheel -q --no-deps -w /wheels .; \
    /opt/streamworker/bin/pip install -q --no-deps /wheels/streamworker-*.whl; \
    pkg="$(cd / && /opt/streamworker/bin/python -I -c 'import pathlib, streamworker.audit as a; print(pathlib.Path(a.__file__).parent)')"; \
    rm -rf "$pkg/migrations"; \
    cp -r migrations "$pkg/migrations"; \
    find "$pkg/migrations" -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/streamworker/bin/python -m compileall -q "$pkg/migrations"; \
    /opt/streamworker/bin/pip uninstall -q -y pip setuptools wheel 2>/dev/null || true; \
    /opt/streamworker/bin/streamworker --help > /dev/null

# --- final: the venv, tini, a non-root user ---------------------------------------------
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG UID=10001
# The offline base ships tini; an official python image gets it from Debian here.
RUN set -eu; \
    if ! command -v tini > /dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid "$UID" streamworker; \
    useradd --system --uid "$UID" --gid "$UID" --home-dir /var/lib/streamworker \
      --shell /usr/sbin/nologin streamworker; \
    install -d -o "$UID" -g "$UID" -m 0750 /var/lib/streamworker
COPY --from=builder /opt/streamworker /opt/streamworker
ENV PATH=/opt/streamworker/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMWORKER_DATA_DIR=/var/lib/streamworker
WORKDIR /var/lib/streamworker
USER ${UID}:${UID}
EXPOSE 6066
# /health answers 200 when Docker, Kafka and the database all answer, else 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('STREAMWORKER_HTTP_PORT', '6066'), timeout=4)"]
LABEL org.opencontainers.image.title="streamworker" \
      org.opencontainers.image.description="Event-sourced code execution: Kafka submissions in, hardened Docker runs, results and a SQL audit log out" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# tini reaps zombies and forwards SIGTERM, so Faust shuts down cleanly (offsets committed).
ENTRYPOINT ["tini", "--"]
CMD ["streamworker", "worker"]
