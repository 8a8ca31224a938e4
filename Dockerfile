# One image for every Comanda process; the command picks which one runs:
#
#   python -m gateway            HTTP/JSON gateway on 8080 (the default command)
#   python -m orders             orders gRPC service on 50051
#   python -m payment            payment gRPC service on 50052
#   python -m orders migrate     (and `python -m payment migrate`, `python -m orders seed-menu`)
#
# Build it with `make image` (scripts/build_image.sh): the build is hermetic, it downloads
# nothing and runs with no network. The host prepares what it needs in the build context:
#   .build/wheelhouse/  the wheels of the runtime dependencies (pyproject.toml, pinned by
#                       constraints.txt) for this base image's Python and platform, and pip's
#   comanda/            the code generated from protos/ by scripts/gen_protos.sh (`make proto`)
# PYTHON_IMAGE is the public image where a registry answers, or the stand-in that
# scripts/base_images.sh made from Debian where none does; the tag follows `version` in
# pyproject.toml, which docker-compose.yml and kubernetes/ use.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: a virtualenv with the dependencies, and the application's byte-code
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# So that scripts/build_image.sh can tell this stage's leftovers (the engine keeps them as cache).
LABEL comanda.stage=build
ENV PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# The virtualenv has no pip of its own: pip runs from its wheel, installing from the wheelhouse
# only. Byte-code is compiled here and below, so a read-only root filesystem never needs to
# write any. The project itself is not pip-installed: its source is copied below and found
# through PYTHONPATH, so non-package data such as <service>/migrations/ is always there. This
# layer is cached until the wheelhouse, pyproject.toml or constraints.txt change.
COPY .build/wheelhouse /wheels
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > requirements.txt \
 && python -m venv --without-pip /opt/venv \
 && set -- /wheels/pip-*.whl \
 && /opt/venv/bin/python "$1/pip" install --no-index --find-links /wheels \
      --no-cache-dir --disable-pip-version-check --no-compile --quiet \
      -c constraints.txt -r requirements.txt \
 && python -m compileall -q -f --invalidation-mode unchecked-hash /opt/venv

# The generated code includes comanda/descriptor_set.binpb, the protos' comments that the
# gateway's OpenAPI document reads (gateway/comments.py): the image needs no protos/.
COPY comanda /app/comanda
COPY chassis /app/chassis
COPY orders /app/orders
COPY payment /app/payment
COPY gateway /app/gateway

RUN python -m compileall -q -f --invalidation-mode unchecked-hash /app

# ---------------------------------------------------------------------------------------------
# runtime: the base image with the virtualenv and the application code, and nothing else
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
    LOG_FORMAT=json \
    COMANDA_ENV=production

# No installer left behind (the public python image ships pip, Debian's python3 does not), and
# a fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN if python -m pip --version >/dev/null 2>&1; then \
      python -m pip uninstall --yes --quiet pip setuptools wheel; \
    fi \
 && groupadd --system --gid 10001 comanda \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin comanda

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

WORKDIR /app
USER 10001:10001

# the HTTP API (ORDERS_HTTP_PORT, and its /metrics), orders gRPC, payment gRPC, the services'
# /metrics
EXPOSE 8080 50051 50052 9090
STOPSIGNAL SIGTERM
CMD ["python", "-m", "orders"]
