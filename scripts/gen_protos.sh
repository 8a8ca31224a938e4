#!/usr/bin/env bash
# Generates Python code, typed stubs and gRPC stubs from protos/ into comanda/, with the
# descriptor set (the protos' comments) the gateway reads: the one place protoc is invoked.
# The generated tree is never edited by hand and never committed. OUT=<dir> generates
# <dir>/comanda instead (tests compare it with what the repository holds).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-.}
rm -rf "$OUT/comanda"
mkdir -p "$OUT/comanda"
mapfile -t PROTOS < <(cd protos && find comanda -name '*.proto' | sort)
"$BIN/python" -m grpc_tools.protoc \
  -I protos -I third_party/googleapis \
  --plugin=protoc-gen-mypy="$BIN/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$BIN/protoc-gen-mypy_grpc" \
  --python_out="$OUT" --mypy_out=quiet:"$OUT" \
  --grpc_python_out="$OUT" --mypy_grpc_out=quiet:"$OUT" \
  --include_source_info --include_imports --descriptor_set_out="$OUT/comanda/descriptor_set.binpb" \
  "${PROTOS[@]/#/protos/}"
# Make every generated directory a regular package, so tools and packaging see them.
find "$OUT/comanda" -type d -exec touch {}/__init__.py \;
touch "$OUT/comanda/py.typed"
echo "generated $(find "$OUT/comanda" -name '*_pb2*.py' | wc -l) modules from ${#PROTOS[@]} protos"
