// Command etcd is the real etcd server, built from the same etcd release the
// control plane embeds, so end-to-end tests can run an external etcd as its
// own process without installing one.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
