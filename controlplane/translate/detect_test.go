package translate

import (
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/v1alpha1"
)

func TestProtocolDetection(t *testing.T) {
	in := &Input{Services: map[ServiceKey]*v1alpha1.ServiceSpec{
		{Namespace: "default", Name: "mysql"}:    {Ports: []v1alpha1.ServicePort{{Port: 3306, Protocol: v1alpha1.ProtocolTCP}}},
		{Namespace: "default", Name: "pg"}:       {Ports: []v1alpha1.ServicePort{{Port: 5432, Protocol: v1alpha1.ProtocolTCP}, {Port: 5433, Protocol: v1alpha1.ProtocolTCP}}},
		{Namespace: "shop", Name: "payments"}:    {Ports: []v1alpha1.ServicePort{{Port: 8080, Protocol: v1alpha1.ProtocolHTTP}}},
		{Namespace: "other", Name: "mysql-copy"}: {Ports: []v1alpha1.ServicePort{{Port: 3306, Protocol: v1alpha1.ProtocolTCP}}},
	}}
	if got, want := in.tcpPorts(), []uint32{3306, 5432, 5433}; !cmp.Equal(got, want) {
		t.Fatalf("tcpPorts = %v, want %v", got, want)
	}
	// An ExternalService's tcp ports count too; its other ports do not.
	withExternal := &Input{Services: in.Services, ExternalServices: map[ServiceKey]*v1alpha1.ExternalServiceSpec{
		{Namespace: "default", Name: "smtp"}: {Ports: []v1alpha1.ExternalPort{{Port: 25, Protocol: v1alpha1.ExternalTCP}, {Port: 443, Protocol: v1alpha1.ExternalTLSProtocol}}},
	}}
	if got, want := withExternal.tcpPorts(), []uint32{25, 3306, 5432, 5433}; !cmp.Equal(got, want) {
		t.Fatalf("tcpPorts with an ExternalService = %v, want %v", got, want)
	}

	tr := &translation{in: in}
	// Every chain's protocol declared: no inspector, no delay.
	declared := &listenerv3.Listener{Name: "outbound_capture", FilterChains: []*listenerv3.FilterChain{{Name: "tcp"}}}
	tr.addProtocolDetection(declared, in.tcpPorts())
	if len(declared.GetListenerFilters()) != 0 || declared.GetListenerFiltersTimeout() != nil {
		t.Fatalf("a listener without an HTTP-detected chain got detection: %v", declared)
	}

	l := &listenerv3.Listener{Name: "outbound_capture", ListenerFiltersTimeout: durationpb.New(time.Second),
		FilterChains: []*listenerv3.FilterChain{{Name: "http", FilterChainMatch: HTTPDetectedMatch()}, {Name: "tcp"}}}
	tr.addProtocolDetection(l, in.tcpPorts())
	if err := l.ValidateAll(); err != nil {
		t.Fatalf("Envoy's constraints: %v", err)
	}
	if l.GetListenerFiltersTimeout().AsDuration() != ProtocolDetectionTimeout || !l.GetContinueOnListenerFiltersTimeout() {
		t.Fatalf("timeout %v continue %v", l.GetListenerFiltersTimeout().AsDuration(), l.GetContinueOnListenerFiltersTimeout())
	}
	f := l.GetListenerFilters()[0]
	if f.GetName() != listenerHTTPInspector || !f.GetTypedConfig().MessageIs(&httpinspectorv3.HttpInspector{}) {
		t.Fatalf("listener filter %v", f)
	}
	var ranges [][2]int32
	for _, r := range f.GetFilterDisabled().GetOrMatch().GetRules() {
		ranges = append(ranges, [2]int32{r.GetDestinationPortRange().GetStart(), r.GetDestinationPortRange().GetEnd()})
	}
	if want := [][2]int32{{3306, 3307}, {5432, 5434}}; !cmp.Equal(ranges, want) {
		t.Fatalf("filter_disabled ranges %v, want %v", ranges, want)
	}

	// One port: a single range (an or_match needs two rules).
	one := portsPredicate([]uint32{3306})
	if r := one.GetDestinationPortRange(); r.GetStart() != 3306 || r.GetEnd() != 3307 {
		t.Fatalf("one port: %v", one)
	}
	if portsPredicate(nil) != nil {
		t.Fatal("no tcp port: want no filter_disabled")
	}
	if d := cmp.Diff(&listenerv3.FilterChainMatch{ApplicationProtocols: []string{"http/1.0", "http/1.1", "h2c"}}, HTTPDetectedMatch(), protocmp.Transform()); d != "" {
		t.Fatalf("HTTPDetectedMatch (-want +got):\n%s", d)
	}
}
