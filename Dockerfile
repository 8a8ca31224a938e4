# syntax=docker/dockerfile:1
#
# One image for every Comanda process; the command picks which one runs:
#
#   python -m gateway            HTTP/JSON gateway on 8080 (the default command)
#   python -m orders             orders gRPC service on 50051
#   python -m payment            payment gRPC service on 50052
#   python -m orders migrate     (and `python -m payment migrate`, `python -m orders seed-menu`)
#
# Build:  docker build -t comanda:0.1.0 .
# The tag follows `version` in pyproject.toml; docker-compose.yml and kubernetes/ use it.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: the dependencies in a virtualenv, and the Python code generated from protos/
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src
RUN python -m venv /opt/venv

# Runtime dependencies only (the [dev] extra stays out), pinned by constraints.txt. The project
# itself is not pip-installed: its source is copied below and found through PYTHONPATH, so
# non-package data such as <service>/migrations/ is always there. This layer is cached until
# pyproject.toml or constraints.txt change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > requirements.txt \
 && pip install -c constraints.txt -r requirements.txt

# Generated code: the same protoc call as scripts/gen_protos.sh, without the typed stubs
# (.pyi files are for mypy, not for running), plus the descriptor set with the protos'
# comments that the gateway's OpenAPI document reads (gateway/comments.py), so the image
# needs no protos/ at run time.
COPY protos ./protos
COPY third_party ./third_party
RUN mkdir -p /app/comanda \
 && python -m grpc_tools.protoc -I protos -I third_party/googleapis \
      --python_out=/app --grpc_python_out=/app \
      --include_source_info --include_imports \
      --descriptor_set_out=/app/comanda/descriptor_set.binpb \
      $(cd protos && find comanda -name '*.proto' | sort | sed 's|^|protos/|') \
 && find /app/comanda -type d -exec touch {}/__init__.py \; \
 && touch /app/comanda/py.typed

COPY chassis /app/chassis
COPY orders /app/orders
COPY payment /app/payment
COPY gateway /app/gateway

# Byte-code compiled here, so a read-only root filesystem never needs to write any.
RUN python -m compileall -q -f --invalidation-mode unchecked-hash /app /opt/venv

# ---------------------------------------------------------------------------------------------
# runtime: python slim with the virtualenv and the application code, and nothing else
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="comanda" \
      org.opencontainers.image.description="Comanda kiosk backbone: orders, payment and gateway processes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 comanda \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin comanda

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

WORKDIR /app
USER 10001:10001

# gateway HTTP (and its /metrics), orders gRPC, payment gRPC, the services' /metrics
EXPOSE 8080 50051 50052 9090
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
