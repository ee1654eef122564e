package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// OutlierDetection is a cluster's passive health checking, with the
// semantics and defaults of Envoy's outlier_detection (consecutive-error
// detectors only). Use DefaultOutlierDetection and override.
type OutlierDetection struct {
	// Consecutive5xx ejects after that many 5xx answers in a row; local
	// origin failures count too unless SplitExternalLocalOriginErrors.
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure counts only 502, 503 and 504.
	ConsecutiveGatewayFailure uint32
	// ConsecutiveLocalOriginFailure counts connect failures and resets,
	// when SplitExternalLocalOriginErrors.
	ConsecutiveLocalOriginFailure  uint32
	SplitExternalLocalOriginErrors bool
	// Interval is how often ejections are reviewed.
	Interval time.Duration
	// BaseEjectionTime times the number of ejections, capped at
	// MaxEjectionTime, is how long an ejection lasts.
	BaseEjectionTime, MaxEjectionTime time.Duration
	// MaxEjectionPercent bounds the share of endpoints ejected at once; one
	// endpoint may always be ejected.
	MaxEjectionPercent uint32
	// Enforcing* are the chances, in percent, that a detection ejects.
	Enforcing5xx, EnforcingGatewayFailure, EnforcingLocalOriginFailure uint32
	// OnEject, if set, is told of every ejection.
	OnEject func()
}

// DefaultOutlierDetection returns Envoy's defaults. As in Envoy, gateway
// failures are detected but not enforced unless EnforcingGatewayFailure is
// set.
func DefaultOutlierDetection() OutlierDetection {
	return OutlierDetection{
		Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent: 10,
		Enforcing5xx:       100, EnforcingGatewayFailure: 0, EnforcingLocalOriginFailure: 100,
	}
}

// Kinds of detection, as detector events.
const (
	detect5xx = iota
	detectGateway
	detectLocal
)

type detection struct {
	host *hostStats
	kind int
}

// outlierState is an endpoint's passive health, in its hostStats. The
// request path only moves the counters; the detector decides.
type outlierState struct {
	cons5xx, consGateway, consLocal atomic.Uint32
	ejected                         atomic.Bool
	// missed holds a detection (kind+1) the detector was too busy to take.
	missed atomic.Int32
	// Owned by the detector goroutine.
	ejections int
	until     time.Time
}

// observe records an exchange's outcome: status is the upstream's answer,
// or 0 for a local-origin failure (connect failure, reset before headers).
func (d *detector) observe(h *hostStats, status int) {
	if d == nil {
		return
	}
	o := &h.outlier
	cfg := &d.cfg
	if status == 0 {
		if cfg.SplitExternalLocalOriginErrors {
			d.count(h, &o.consLocal, cfg.ConsecutiveLocalOriginFailure, detectLocal)
			return
		}
		// Not split: a local-origin failure is a 503, as Envoy maps it.
		status = http.StatusServiceUnavailable
	} else if cfg.SplitExternalLocalOriginErrors {
		o.consLocal.Store(0)
	}
	if status < 500 {
		o.cons5xx.Store(0)
		o.consGateway.Store(0)
		return
	}
	d.count(h, &o.cons5xx, cfg.Consecutive5xx, detect5xx)
	if status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		d.count(h, &o.consGateway, cfg.ConsecutiveGatewayFailure, detectGateway)
	} else {
		o.consGateway.Store(0)
	}
}

func (d *detector) count(h *hostStats, c *atomic.Uint32, threshold uint32, kind int) {
	if threshold == 0 || c.Add(1) != threshold {
		return
	}
	select {
	case d.events <- detection{host: h, kind: kind}:
	default:
		// The detector is behind: the next review takes it.
		h.outlier.missed.Store(int32(kind) + 1)
	}
}

// observeErr records a failed exchange: connect failures and transport
// errors are local-origin failures; a request the caller cancelled says
// nothing about the endpoint.
func (d *detector) observeErr(h *hostStats, req *http.Request, err error) {
	if d == nil || errors.Is(req.Context().Err(), context.Canceled) && !IsConnectError(err) {
		return
	}
	d.observe(h, 0)
}

// detector is the control path of outlier detection: one goroutine per
// in-service pool, which ejects endpoints by rebuilding the serving
// cluster's picker and returns them when their time is up.
type detector struct {
	cfg    OutlierDetection
	pool   *Pool
	events chan detection
	now    func() time.Time

	start, stop sync.Once
	done        chan struct{}
	wg          sync.WaitGroup
}

func newDetector(cfg OutlierDetection, p *Pool) *detector {
	return &detector{cfg: cfg, pool: p, events: make(chan detection, 64), now: time.Now, done: make(chan struct{})}
}

func (d *detector) run() {
	d.start.Do(func() {
		d.wg.Add(1)
		go d.loop()
	})
}

func (d *detector) close() {
	d.stop.Do(func() { close(d.done) })
	d.wg.Wait()
}

func (d *detector) loop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case ev := <-d.events:
			if d.eject(ev) {
				d.pool.rebuild()
			}
		case <-t.C:
			if d.review() {
				d.pool.rebuild()
			}
		}
	}
}

func (d *detector) enforcing(kind int) uint32 {
	switch kind {
	case detect5xx:
		return d.cfg.Enforcing5xx
	case detectGateway:
		return d.cfg.EnforcingGatewayFailure
	}
	return d.cfg.EnforcingLocalOriginFailure
}

// eject ejects ev's endpoint if the detection is enforced and the cluster
// may lose one more endpoint.
func (d *detector) eject(ev detection) bool {
	o := &ev.host.outlier
	if o.ejected.Load() {
		return false
	}
	c := d.pool.serving.Load()
	if c == nil || !c.has(ev.host) {
		return false
	}
	if pct := d.enforcing(ev.kind); pct < 100 && rand.Uint32N(100) >= pct {
		return false
	}
	total, ejected := 0, 0
	for _, e := range c.endpoints {
		total++
		if e.host.outlier.ejected.Load() {
			ejected++
		}
	}
	if ejected > 0 && 100*(ejected+1) > int(d.cfg.MaxEjectionPercent)*total {
		return false
	}
	o.ejections++
	dur := d.cfg.BaseEjectionTime * time.Duration(o.ejections)
	if d.cfg.MaxEjectionTime > 0 && dur > d.cfg.MaxEjectionTime {
		dur = d.cfg.MaxEjectionTime
	}
	o.until = d.now().Add(dur)
	o.cons5xx.Store(0)
	o.consGateway.Store(0)
	o.consLocal.Store(0)
	o.ejected.Store(true)
	if d.cfg.OnEject != nil {
		d.cfg.OnEject()
	}
	return true
}

// review returns the endpoints whose ejection is over, and lets the
// ejection count of endpoints that stayed healthy decay, as Envoy's
// interval does. It also takes the detections the detector missed.
func (d *detector) review() bool {
	c := d.pool.serving.Load()
	if c == nil {
		return false
	}
	now := d.now()
	changed := false
	for _, e := range c.endpoints {
		o := &e.host.outlier
		switch {
		case o.ejected.Load():
			if !now.Before(o.until) {
				o.ejected.Store(false)
				changed = true
			}
		case o.ejections > 0:
			o.ejections--
		}
		if kind := o.missed.Swap(0); kind > 0 && d.eject(detection{host: e.host, kind: int(kind) - 1}) {
			changed = true
		}
	}
	return changed
}

// observeDial records the outcome of a dedicated stream's connect.
func (c *Cluster) observeDial(ctx context.Context, ep *Endpoint, err error) {
	d := c.pool.outlier
	if d == nil {
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			d.observe(ep.host, 0)
		}
		return
	}
	if d.cfg.SplitExternalLocalOriginErrors {
		ep.host.outlier.consLocal.Store(0)
	}
}
