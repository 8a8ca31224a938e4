#!/usr/bin/env bash
# Generates Python code, typed stubs and gRPC stubs from protos/ into comanda/.
# The generated tree is never edited by hand and never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
rm -rf comanda
mkdir -p comanda
mapfile -t PROTOS < <(cd protos && find comanda -name '*.proto' | sort)
"$BIN/python" -m grpc_tools.protoc \
  -I protos -I third_party/googleapis \
  --plugin=protoc-gen-mypy="$BIN/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$BIN/protoc-gen-mypy_grpc" \
  --python_out=. --mypy_out=quiet:. \
  --grpc_python_out=. --mypy_grpc_out=quiet:. \
  --include_source_info --include_imports --descriptor_set_out=comanda/descriptor_set.binpb \
  "${PROTOS[@]/#/protos/}"
# Make every generated directory a regular package, so tools and packaging see them.
find comanda -type d -exec touch {}/__init__.py \;
touch comanda/py.typed
echo "generated $(find comanda -name '*_pb2*.py' | wc -l) modules from ${#PROTOS[@]} protos"
