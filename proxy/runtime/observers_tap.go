package runtime

import "github.com/weftmesh/weft/proxy/observe"

// tapObserver offers a listener's requests to live taps (the admin's /tap).
func (b *builder) tapObserver(direction string) (observe.Observer, error) { return nil, nil }
