// Command weft-proxy is the sidecar proxy alone: the same code as `weft
// proxy`, without the control plane, etcd or Kubernetes linked in.
package main

import (
	"os"

	"github.com/weftmesh/weft/cli/proxycmd"
)

func main() { os.Exit(proxycmd.Run(os.Args[1:])) }
