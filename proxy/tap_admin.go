package proxy

import (
	"net/http"

	"github.com/weftmesh/weft/proxy/admin"
)

// TapHandler serves the admin port's GET /tap from the runtime's tap hub.
func (p *proxyState) TapHandler() http.Handler { return p.rt.Tap().Handler() }

var _ admin.Tapper = (*proxyState)(nil)
