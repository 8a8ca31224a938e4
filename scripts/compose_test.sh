#!/usr/bin/env bash
# `make compose-test`: the shipped artifacts, for real. On a machine with only Debian's packages
# it installs and starts the engine (scripts/docker_engine.sh), makes or pulls the base images
# and builds the image hermetically (scripts/build_image.sh), brings the compose stack up as a
# project of its own (its containers, network and volumes; ports published on free ports), and
# runs tests/containers against it: the image's promises, a customer's journey through the
# gateway, orders SIGKILLed mid-stream, and the Kubernetes pods as the manifests run them.
# It prints each step's time and always tears the project down, on failure and Ctrl-C too.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE=${COMPOSE:-docker-compose}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
export COMPOSE COMANDA_IMAGE=comanda:$VERSION COMPOSE_ENV_FILE=$PWD/.build/base-images.env
export COMPOSE_TEST_PROJECT=comanda-test-$$
# Free ports on 127.0.0.1: never in the way of `make run` or of another stack. The HTTP API's
# is picked here rather than left to the engine (0), so that it stays where it is when the
# orders container restarts (the tests SIGKILL it and go on through that port).
free_port() {
  .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
HTTP_HOST_PORT=$(free_port)
export HTTP_HOST_PORT ORDERS_HOST_PORT=0 PAYMENT_HOST_PORT=0
LOG=.build/compose-test.log

started=$SECONDS
timings=()
step() { # NAME COMMAND...: runs it, prints and records its time
  local name=$1 begin=$SECONDS
  shift
  echo "== $name"
  "$@" || {
    local status=$?
    timings+=("$(printf '%4d s  %s (failed)' $((SECONDS - begin)) "$name")")
    return $status
  }
  timings+=("$(printf '%4d s  %s' $((SECONDS - begin)) "$name")")
}

compose() { $COMPOSE --env-file "$COMPOSE_ENV_FILE" -p "$COMPOSE_TEST_PROJECT" "$@"; }

finish() {
  local status=$? begin=$SECONDS
  trap - EXIT INT TERM
  if [[ -f $COMPOSE_ENV_FILE ]] && command -v "${COMPOSE%% *}" >/dev/null; then
    if ((status != 0)) && [[ -n $(compose ps -q 2>/dev/null) ]]; then
      compose ps || true
      compose logs --no-color --tail 40 >>"$LOG" 2>&1 || true
      echo "(the services' last log lines are in $LOG)"
    fi
    # What the tests started beside the project (the Kubernetes pods), then the project.
    local label="label=comanda.compose-test=$COMPOSE_TEST_PROJECT"
    docker ps -aq --filter "$label" | xargs -r docker rm -fv >/dev/null
    docker network ls -q --filter "$label" | xargs -r docker network rm >/dev/null
    compose down --volumes --remove-orphans --timeout 10 >>"$LOG" 2>&1 || echo "compose down failed: see $LOG"
    timings+=("$(printf '%4d s  %s' $((SECONDS - begin)) "tear down (containers, networks, volumes)")")
  fi
  echo "== compose-test: $( ((status == 0)) && echo passed || echo "FAILED ($status)") in $((SECONDS - started)) s"
  printf '  %s\n' "${timings[@]}"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p .build
: >"$LOG"
step "engine" scripts/docker_engine.sh
step "image (base images, wheels, docker build --network none)" scripts/build_image.sh
# The tests use this very build, even if another one takes the tag meanwhile.
COMANDA_IMAGE_ID=$(docker image inspect --format '{{.Id}}' "$COMANDA_IMAGE")
export COMANDA_IMAGE_ID
up() { compose up --detach >>"$LOG" 2>&1 || { tail -30 "$LOG"; return 1; }; }
step "compose up (project $COMPOSE_TEST_PROJECT)" up
step "tests/containers" .venv/bin/python -m pytest tests/containers -v -s -p no:cacheprovider
