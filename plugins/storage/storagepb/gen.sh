#!/bin/sh
# Regenerates the Go code of storage.proto. Needs protoc (apt-get install protobuf-compiler)
# and the Go generators:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
# The generated files are committed, so building timgw needs none of this.
set -eu
cd "$(dirname "$0")"
protoc --go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	storage.proto
