package runtime

// The load balancers a Cluster's lb_policy may name. A new balancer is a
// folder under proxy/lb and one line here.
import (
	_ "github.com/weftmesh/weft/proxy/lb/leastrequest"
	_ "github.com/weftmesh/weft/proxy/lb/random"
	_ "github.com/weftmesh/weft/proxy/lb/ringhash"
	_ "github.com/weftmesh/weft/proxy/lb/roundrobin"
)
