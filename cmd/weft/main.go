// Command weft is the Weft service mesh: control plane, CLI, sidecar proxy
// and demo in one binary. See 'weft --help'.
package main

import (
	"os"

	"github.com/weftmesh/weft/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:])) }
