#!/usr/bin/env bash
# A container engine and Compose for `make compose-test`, on a machine with only Debian's
# packages: installs Debian's docker.io (the engine) and docker-compose (Compose v1) when they
# are missing, and starts the engine with its defaults when it is not running (systemd's
# docker.service, or dockerd by itself where there is no systemd). Installing and starting need
# root; an engine already running needs nothing.
set -euo pipefail

as_root() {
  if [[ $(id -u) != 0 ]]; then
    echo "docker_engine.sh: $1 needs root (or do it yourself: see the README, Option 2)" >&2
    exit 1
  fi
}

engine_up() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

packages=()
engine_up || command -v dockerd >/dev/null || packages+=(docker.io)
command -v docker-compose >/dev/null || packages+=(docker-compose)
if ((${#packages[@]})); then
  as_root "apt-get install ${packages[*]}"
  echo "  apt-get install ${packages[*]}"
  log=$(mktemp)
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      "${packages[@]}"; } >"$log" 2>&1 || {
    cat "$log" >&2
    exit 1
  }
  rm -f "$log"
fi

if ! engine_up; then
  as_root "starting the Docker engine"
  if [[ -d /run/systemd/system ]]; then
    echo "  systemctl start docker"
    systemctl start docker
  else
    # No systemd (a container, some VMs): the engine by itself, with its defaults. Debian's
    # /etc/init.d/docker is no help where the hard limit of open files is under its 1048576.
    echo "  dockerd (log: /var/log/docker.log)"
    setsid --fork dockerd >>/var/log/docker.log 2>&1 </dev/null
  fi
  for _ in $(seq 1 120); do
    engine_up && break
    sleep 0.5
  done
  engine_up || {
    echo "docker_engine.sh: the engine did not answer within 60 s; its log:" >&2
    tail -20 /var/log/docker.log >&2 || true
    exit 1
  }
fi
echo "  $(docker version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'), $(docker-compose version --short | sed 's/^/docker-compose /')"
