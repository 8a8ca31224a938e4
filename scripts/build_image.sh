#!/usr/bin/env bash
# `make image`: builds comanda:<version> hermetically. The base images come from
# scripts/base_images.sh (pulled, or made from Debian where no registry answers); the wheels
# of the runtime dependencies are downloaded here, on the host, for the base image's own
# Python and platform, into .build/wheelhouse; then `docker build --network none` installs
# them with no index. The generated code (comanda/) is `make proto`'s, made before this runs.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE=${IMAGE:-comanda:$VERSION}
WHEELHOUSE=.build/wheelhouse
[[ -f comanda/descriptor_set.binpb ]] || { echo "build_image.sh: no generated code in comanda/ (make proto)" >&2; exit 1; }

scripts/base_images.sh
PYTHON_IMAGE=$(sed -n 's/^PYTHON_IMAGE=//p' .build/base-images.env)

# The wheels must fit the image's interpreter and C library, not this machine's.
read -r py_version abi glibc arch < <(docker run --rm --network none --entrypoint python3 "$PYTHON_IMAGE" -c '
import platform, sys
libc, version = platform.libc_ver()
print(f"{sys.version_info[0]}.{sys.version_info[1]}", f"cp{sys.version_info[0]}{sys.version_info[1]}",
      version if libc == "glibc" else "none", platform.machine())')
[[ $glibc != none ]] || { echo "build_image.sh: $PYTHON_IMAGE has no glibc; only manylinux wheels are fetched" >&2; exit 1; }
platforms=()
for ((minor = ${glibc#*.}; minor >= 5; minor--)); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")

mkdir -p .build
.venv/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >.build/requirements.txt
key=$(cat .build/requirements.txt constraints.txt | sha256sum | cut -c1-16)-$abi-glibc$glibc-$arch
if [[ $(cat .build/wheelhouse.key 2>/dev/null) != "$key" ]]; then
  echo "  wheels for $PYTHON_IMAGE (Python $py_version, glibc $glibc, $arch) into $WHEELHOUSE"
  rm -rf "$WHEELHOUSE"
  .venv/bin/pip download -qq --disable-pip-version-check --dest "$WHEELHOUSE" \
    --only-binary=:all: --implementation cp --python-version "$py_version" --abi "$abi" "${platforms[@]}" \
    -c constraints.txt -r .build/requirements.txt pip
  echo "$key" >.build/wheelhouse.key
fi

previous=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
docker build --network none --force-rm --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" --tag "$IMAGE" . \
  > .build/image-build.log 2>&1 || { tail -30 .build/image-build.log >&2; exit 1; }
# Tidy the shared engine: the image this build replaced (unless a container still uses it), and
# all but the newest build stage, which is the next build's cache.
if [[ -n $previous && $previous != $(docker image inspect --format '{{.Id}}' "$IMAGE") ]]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
docker images --quiet --filter dangling=true --filter label=comanda.stage=build | tail -n +2 |
  xargs -r docker rmi >/dev/null 2>&1 || true
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "  $IMAGE on $PYTHON_IMAGE: $((size / 1000000)) MB"
