package xdswire

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// filler builds random messages that set only the fields the proxy honours.
type filler struct {
	r *rand.Rand
	// plausible values: small numbers and strings that Envoy's field
	// rules often accept, and no Any values (whose contents
	// protoc-gen-validate does not check).
	plausible bool
	// anyTypes are the messages an Any may hold: those allowed field by field.
	anyTypes []protoreflect.FullName
}

func newFiller(seed uint64) *filler {
	f := &filler{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for name := range supported {
		if !leaves[name] {
			f.anyTypes = append(f.anyTypes, name)
		}
	}
	sort.Slice(f.anyTypes, func(i, j int) bool { return f.anyTypes[i] < f.anyTypes[j] })
	return f
}

func newOf(t testing.TB, name protoreflect.FullName) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// decodable reports whether the generated code decodes messages of a type.
func decodable(name protoreflect.FullName) bool {
	if name == "google.protobuf.Any" || supported[name] != nil || leaves[name] {
		return true
	}
	return heldByLeaf(name)
}

var leafClosure map[protoreflect.FullName]bool

func heldByLeaf(name protoreflect.FullName) bool {
	if leafClosure == nil {
		leafClosure = map[protoreflect.FullName]bool{"google.protobuf.Any": true}
		var walk func(md protoreflect.MessageDescriptor)
		walk = func(md protoreflect.MessageDescriptor) {
			if leafClosure[md.FullName()] && md.FullName() != "google.protobuf.Any" {
				return
			}
			leafClosure[md.FullName()] = true
			for i := 0; i < md.Fields().Len(); i++ {
				if t := target(md.Fields().Get(i)); t != nil {
					walk(t)
				}
			}
		}
		for n := range leaves {
			mt, _ := protoregistry.GlobalTypes.FindMessageByName(n)
			walk(mt.Descriptor())
		}
	}
	return leafClosure[name]
}

func isLeaf(name protoreflect.FullName) bool {
	return leaves[name] || (supported[name] == nil && heldByLeaf(name))
}

func honours(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) bool {
	if isLeaf(md.FullName()) {
		return true
	}
	return supported[md.FullName()][fd.Name()]
}

func (f *filler) fill(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	if md.FullName() == "google.protobuf.Any" {
		f.fillAny(m, depth)
		return
	}
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !honours(md, fd) || f.r.IntN(3) == 0 {
			continue
		}
		if t := target(fd); t != nil && (!decodable(t.FullName()) || depth <= 0 ||
			f.plausible && t.FullName() == "google.protobuf.Any") {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for n := f.r.IntN(3); n >= 0; n-- {
				k := f.scalar(fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					f.fill(v.Message(), depth-1)
					mp.Set(k, v)
				} else {
					mp.Set(k, f.scalar(fd.MapValue()))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := f.r.IntN(3); n >= 0; n-- {
				if fd.Message() != nil {
					v := l.NewElement()
					f.fill(v.Message(), depth-1)
					l.Append(v)
				} else {
					l.Append(f.scalar(fd))
				}
			}
		case fd.Message() != nil:
			f.fill(m.Mutable(fd).Message(), depth-1)
		default:
			m.Set(fd, f.scalar(fd))
		}
	}
}

// fillAny packs a random message of a type the proxy honours.
func (f *filler) fillAny(m protoreflect.Message, depth int) {
	name := f.anyTypes[f.r.IntN(len(f.anyTypes))]
	mt, _ := protoregistry.GlobalTypes.FindMessageByName(name)
	inner := mt.New()
	if depth > 0 {
		f.fill(inner, depth-1)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner.Interface())
	if err != nil {
		panic(err)
	}
	a := m.Interface().(*anypb.Any)
	a.TypeUrl = "type.googleapis.com/" + string(name)
	a.Value = b
}

func (f *filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	n := f.r.Uint64()
	if f.plausible {
		small := []uint64{1, 2, 5, 50, 200, 404}[n%6]
		switch fd.Kind() {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			return protoreflect.ValueOfInt32(int32(small))
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return protoreflect.ValueOfInt64(int64(small))
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			return protoreflect.ValueOfUint32(uint32(small))
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return protoreflect.ValueOfUint64(small)
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(float64(small) / 4)
		case protoreflect.StringKind:
			return protoreflect.ValueOfString([]string{"a", "x-header", "LH", "/p", "x\nbad", ""}[n%6])
		}
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		// Not the zero value, which proto3 does not put on the wire.
		vs := fd.Enum().Values()
		v := vs.Get(f.r.IntN(vs.Len())).Number()
		if v == 0 && vs.Len() > 1 {
			v = vs.Get(1).Number()
		}
		return protoreflect.ValueOfEnum(v)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n) | 1)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(n) | 1)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n) | 1)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(n | 1)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(n%1000) + 0.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(n%100000) / 7)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString([]string{"a", "outbound|80||echo.default", "é", "x-header"}[n%4])
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{byte(n), 0, byte(n >> 8)})
	}
	panic(fd.Kind().String())
}

func names() []protoreflect.FullName {
	var out []protoreflect.FullName
	for n := range supported {
		out = append(out, n)
	}
	for n := range leaves {
		if supported[n] == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TestRoundTrip: random messages of every type the proxy honours, marshalled
// by protobuf-go, decode to equal messages, which Check accepts and Equal
// finds equal to the originals.
func TestRoundTrip(t *testing.T) {
	for _, name := range names() {
		for seed := uint64(0); seed < 20; seed++ {
			f := newFiller(seed)
			want := newOf(t, name)
			f.fill(want.ProtoReflect(), 4)
			b, err := proto.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			got := newOf(t, name)
			if err := Unmarshal(b, got); err != nil {
				t.Fatalf("%s (seed %d): %v", name, seed, err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("%s (seed %d): decoded\n%v\nwant\n%v", name, seed, got, want)
			}
			if !Equal(got, want) {
				t.Fatalf("%s (seed %d): Equal false for equal messages", name, seed)
			}
			other := newOf(t, name)
			newFiller(seed+1000).fill(other.ProtoReflect(), 4)
			if Equal(got, other) != proto.Equal(got, other) {
				t.Fatalf("%s (seed %d): Equal %v, proto.Equal %v\n%v\n%v", name, seed, Equal(got, other), proto.Equal(got, other), got, other)
			}
		}
	}
}

// TestRulesAgreeWithValidateAll: Check enforces Envoy's field rules as
// protoc-gen-validate's generated ValidateAll does, on random messages of
// every type (without Any values, whose contents ValidateAll does not
// check), and names a field that ValidateAll names too.
func TestRulesAgreeWithValidateAll(t *testing.T) {
	valid, invalid := 0, 0
	for _, name := range names() {
		for seed := uint64(0); seed < 40; seed++ {
			f := newFiller(seed)
			f.plausible = true
			m := newOf(t, name)
			f.fill(m.ProtoReflect(), 3)
			v, ok := m.(interface{ ValidateAll() error })
			if !ok {
				continue
			}
			theirs, mine := v.ValidateAll(), Check(m)
			if (theirs == nil) != (mine == nil) {
				t.Fatalf("%s (seed %d): Check: %v\nValidateAll: %v\n%v", name, seed, mine, theirs, m)
			}
			if mine == nil {
				valid++
				continue
			}
			invalid++
			var fe *FieldError
			if !errors.As(mine, &fe) {
				t.Fatalf("%s: %v is not a FieldError", name, mine)
			}
			last := fe.Path[strings.LastIndexAny(fe.Path, ".")+1:]
			if i := strings.IndexByte(last, '['); i >= 0 {
				last = last[:i]
			}
			text, field := strings.ToLower(strings.ReplaceAll(theirs.Error(), "_", "")), "."+strings.ReplaceAll(last, "_", "")
			if !strings.Contains(text, field+":") && !strings.Contains(text, field+"[") {
				t.Errorf("%s (seed %d): Check names %q (%v), ValidateAll does not: %v", name, seed, last, mine, theirs)
			}
		}
	}
	t.Logf("%d valid and %d invalid messages", valid, invalid)
	if valid < 1000 || invalid < 1000 {
		t.Fatalf("%d valid and %d invalid messages: the test no longer tells them apart", valid, invalid)
	}
}

// TestRefusesFieldsNotHonoured: each field the allowlist does not name, set
// alone, is refused by the decoder and by Check, with its name as the path.
func TestRefusesFieldsNotHonoured(t *testing.T) {
	f := newFiller(1)
	count := 0
	for _, name := range names() {
		if isLeaf(name) {
			continue
		}
		md := newOf(t, name).ProtoReflect().Descriptor()
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			held := target(fd)
			if honours(md, fd) && (held == nil || decodable(held.FullName())) {
				continue
			}
			m := newOf(t, name)
			r := m.ProtoReflect()
			switch {
			case fd.IsMap():
				mp := r.Mutable(fd).Map()
				if fd.MapValue().Message() != nil {
					mp.Set(f.scalar(fd.MapKey()).MapKey(), mp.NewValue())
				} else {
					mp.Set(f.scalar(fd.MapKey()).MapKey(), f.scalar(fd.MapValue()))
				}
			case fd.IsList():
				l := r.Mutable(fd).List()
				if fd.Message() != nil {
					l.Append(l.NewElement())
				} else {
					l.Append(f.scalar(fd))
				}
			case fd.Message() != nil:
				r.Mutable(fd)
			default:
				r.Set(fd, f.scalar(fd))
			}
			count++
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			err = Unmarshal(b, newOf(t, name))
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Path, string(fd.Name())) || !strings.Contains(err.Error(), "not supported") {
				t.Errorf("%s.%s: decode error %v, want one at %s that says it is not supported", name, fd.Name(), err, fd.Name())
			}
			err = Check(m)
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Path, string(fd.Name())) || !strings.Contains(err.Error(), "not supported") {
				t.Errorf("%s.%s: Check error %v, want one at %s that says it is not supported", name, fd.Name(), err, fd.Name())
			}
		}
	}
	if count < 100 {
		t.Fatalf("only %d fields refused: the allowlist looks wrong", count)
	}
}

// TestCheckPaths: errors name the whole path, through lists and the
// messages that Any values hold.
func TestCheckPaths(t *testing.T) {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "in", Tracing: &hcmv3.HttpConnectionManager_Tracing{Verbose: true}}
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{}, {Filters: []*listenerv3.Filter{
		{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}},
	}}}}
	const want = "filter_chains[1].filters[0].typed_config(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager).tracing.verbose: field is not supported by this proxy"
	if err := Check(l); err == nil || err.Error() != want {
		t.Errorf("Check: %v\nwant %s", err, want)
	}
	b, _ := proto.Marshal(l)
	var got listenerv3.Listener
	if err := Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v (the Any is checked by Check, not decoded)", err)
	}
	if err := Check(&got); err == nil || err.Error() != want {
		t.Errorf("Check after Unmarshal: %v\nwant %s", err, want)
	}

	// An extension of a type the proxy does not have is named by its name.
	l.FilterChains[1].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"}}
	l.FilterChains[1].Filters[0].Name = "envoy.filters.network.redis_proxy"
	if err := Check(l); err == nil || err.Error() != "filter_chains[1].filters[0]: envoy.filters.network.redis_proxy is not supported" {
		t.Errorf("Check: %v", err)
	}

	// Unknown field numbers, and malformed input.
	if err := Unmarshal([]byte{0xf8, 0xff, 0x3f, 1}, &clusterv3.Cluster{}); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("unknown field: %v", err)
	}
	if err := Unmarshal([]byte{0x0a, 5, 'a'}, &routev3.RouteConfiguration{}); err == nil || !strings.HasPrefix(err.Error(), "name: malformed") {
		t.Errorf("truncated: %v", err)
	}
	if err := Unmarshal([]byte{0x0a, 1, 0xff}, &endpointv3.ClusterLoadAssignment{}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("bad UTF-8: %v", err)
	}
}

// TestEqualExcept: the top-level field named is not compared, and only it.
func TestEqualExcept(t *testing.T) {
	a := &clusterv3.Cluster{Name: "c", LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "a"}}
	b := &clusterv3.Cluster{Name: "c", LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "b"}}
	if Equal(a, b) || !EqualExcept(a, b, "load_assignment") {
		t.Error("load_assignment: Equal should differ, EqualExcept should not")
	}
	b.Name = "d"
	if EqualExcept(a, b, "load_assignment") {
		t.Error("EqualExcept ignored the name")
	}
}

// TestUnmarshalNew: types the proxy does not honour are refused.
func TestUnmarshalNew(t *testing.T) {
	a, _ := anypb.New(&tlsv3.Secret{Name: "s"})
	m, err := UnmarshalNew(a)
	if err != nil || m.(*tlsv3.Secret).GetName() != "s" {
		t.Fatalf("UnmarshalNew = %v, %v", m, err)
	}
	if _, err := UnmarshalNew(&anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Timestamp"}); err == nil {
		t.Error("a Timestamp was accepted")
	}
	if err := UnmarshalAny(a, &clusterv3.Cluster{}); err == nil {
		t.Error("a Secret was decoded as a Cluster")
	}
}

// FuzzUnmarshal: whatever the decoder accepts, protobuf-go decodes to the
// same message (the decoder refuses more, never less or differently).
func FuzzUnmarshal(f *testing.F) {
	roots := []proto.Message{&listenerv3.Listener{}, &clusterv3.Cluster{}, &routev3.RouteConfiguration{},
		&endpointv3.ClusterLoadAssignment{}, &tlsv3.Secret{}, &hcmv3.HttpConnectionManager{}}
	for i, r := range roots {
		for seed := uint64(0); seed < 3; seed++ {
			m := proto.Clone(r)
			newFiller(seed).fill(m.ProtoReflect(), 4)
			b, _ := proto.Marshal(m)
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		root := roots[int(which)%len(roots)]
		got := root.ProtoReflect().New().Interface()
		if err := Unmarshal(b, got); err != nil {
			return
		}
		want := root.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatalf("accepted what protobuf-go refuses (%v)", err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("decoded\n%v\nprotobuf-go decoded\n%v", got, want)
		}
	})
}

// BenchmarkUnmarshal decodes a random Listener and Cluster, with the
// generated decoder and with protobuf-go (whose coders are built by its
// first run, outside the timing).
func BenchmarkUnmarshal(b *testing.B) {
	for _, root := range []proto.Message{&listenerv3.Listener{}, &clusterv3.Cluster{}} {
		m := proto.Clone(root)
		newFiller(7).fill(m.ProtoReflect(), 5)
		wire, err := proto.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		name := string(m.ProtoReflect().Descriptor().Name())
		b.Run(name+"/xdswire", func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Unmarshal(wire, root.ProtoReflect().New().Interface()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/proto", func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if err := proto.Unmarshal(wire, root.ProtoReflect().New().Interface()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
