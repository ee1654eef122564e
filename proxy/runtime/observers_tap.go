package runtime

import (
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/tap"
)

// Tap is the hub the admin port's /tap subscribes to.
func (r *Runtime) Tap() *tap.Hub { return r.tap }

// tapObserver offers a listener's requests to live taps (the admin's /tap).
// Every listener has one: it costs one atomic load while nobody taps.
func (b *builder) tapObserver(direction string) (observe.Observer, error) {
	return tapObserver{hub: b.rt.tap}, nil
}

type tapObserver struct{ hub *tap.Hub }

func (tapObserver) Start(*observe.Request) {}

func (o tapObserver) Done(r *observe.Request) {
	if o.hub.Active() {
		o.hub.Publish(r)
	}
}

var _ observe.Observer = tapObserver{}
