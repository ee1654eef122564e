// Package meshv1 holds the control plane's Identity and Registry gRPC services.
//
// The .pb.go files are generated (protoc from Debian's protobuf-compiler, plus
// protoc-gen-go and protoc-gen-go-grpc) and checked in, so a build needs no protoc.
package meshv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative mesh.proto
