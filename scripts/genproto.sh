#!/usr/bin/env bash
# Regenerates proto/bwx/v1/*.pb.go from the .proto files.
# protoc comes from Debian (protobuf-compiler); the Go plugins are the versions
# pinned by the `tool` directives in go.mod. OUT=dir writes elsewhere (the
# staleness test uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "genproto: protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
out=${OUT:-proto}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
mkdir -p "$out"
PATH="$bin:$PATH" protoc -I proto \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  proto/bwx/v1/*.proto
