package xdsmeta

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

func TestNodeModeRoundTrip(t *testing.T) {
	in := Node{ID: "ingress.edge@127.0.0.9:15000", Service: "ingress", Namespace: "edge", Mode: ModeIngress, ListenIP: "127.0.0.9", Admin: "127.0.0.9:15000"}
	out, err := NodeFromProto(in.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	if out.Mode != ModeIngress || out.ListenIP != "127.0.0.9" || !out.Ingress() {
		t.Errorf("round trip gave mode %q listen IP %q, want ingress 127.0.0.9", out.Mode, out.ListenIP)
	}
	p := in.ToProto()
	p.GetMetadata().GetFields()[keyMode] = structpb.NewStringValue("sideways")
	if _, err := NodeFromProto(p); err == nil || !strings.Contains(err.Error(), `unknown proxy mode "sideways"`) {
		t.Errorf("NodeFromProto(mode sideways) error = %v, want it to name the mode", err)
	}
	if _, ok := (Node{Service: "a", Namespace: "b"}).ToProto().GetMetadata().GetFields()[keyMode]; ok {
		t.Error("an explicit node sends a mode: its metadata changed")
	}
}
