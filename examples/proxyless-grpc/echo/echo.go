// Package echo is the example's gRPC service, declared by hand so the
// example needs no generated code: Echo/Say takes a StringValue and answers
// with the server's name.
package echo

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ServiceName and SayMethod name the service on the wire.
const (
	ServiceName = "weft.examples.echo.Echo"
	SayMethod   = "/" + ServiceName + "/Say"
)

// Server answers Say.
type Server interface {
	Say(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
}

// Register adds the Echo service, served by srv, to r.
func Register(r grpc.ServiceRegistrar, srv Server) {
	r.RegisterService(&grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*Server)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Say",
			Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				say := func(ctx context.Context, req any) (any, error) {
					return srv.(Server).Say(ctx, req.(*wrapperspb.StringValue))
				}
				if icpt == nil {
					return say(ctx, in)
				}
				return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: SayMethod}, say)
			},
		}},
	}, srv)
}

// Say calls Echo/Say on conn.
func Say(ctx context.Context, conn grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, SayMethod, wrapperspb.String(msg), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}
