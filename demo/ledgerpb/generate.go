// Package ledgerpb holds the demo Ledger gRPC service (weft.demo.ledger.v1).
//
// The .pb.go files are generated and checked in, so a build needs no protoc.
package ledgerpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative ledger.proto
