// Command server is the example's Echo server. With -xds (the default) it is
// a proxyless xDS server: its listener, mTLS and AccessPolicies come from
// the control plane named in $GRPC_XDS_BOOTSTRAP. With -xds=false it is a
// plain h2c gRPC server, for a weft proxy sidecar to front.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/examples/proxyless-grpc/echo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:50051", "address to listen on (IP:port, as in the bootstrap's --serve)")
	name := flag.String("name", "echo", "name to answer with")
	useXDS := flag.Bool("xds", true, "serve as a proxyless xDS server (false: plain h2c, behind a sidecar)")
	failEvery := flag.Int("fail-every", 0, "answer every Nth call with UNAVAILABLE (0: never)")
	flag.Parse()

	var srv interface {
		grpc.ServiceRegistrar
		Serve(net.Listener) error
		GracefulStop()
	}
	if *useXDS {
		creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
		if err != nil {
			return fmt.Errorf("xds credentials: %w", err)
		}
		s, err := xds.NewGRPCServer(grpc.Creds(creds), xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
			log.Printf("serving mode of %s: %v (%v)", addr, args.Mode, args.Err)
		}))
		if err != nil {
			return fmt.Errorf("xds server: %w", err)
		}
		srv = s
	} else {
		srv = grpc.NewServer()
	}
	echo.Register(srv, &sayer{name: *name, failEvery: int64(*failEvery)})

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	log.Printf("%s listening on %s (xds=%v)", *name, lis.Addr(), *useXDS)
	return srv.Serve(lis)
}

// sayer answers with its name. A message "sleep=DURATION" makes it wait
// first (for timeouts), and failEvery makes it fail some calls (for retries).
type sayer struct {
	name      string
	failEvery int64
	calls     atomic.Int64
}

func (s *sayer) Say(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	if p, ok := peer.FromContext(ctx); ok && p.AuthInfo != nil {
		log.Printf("say %q from %s (%s)", in.GetValue(), p.Addr, p.AuthInfo.AuthType())
	}
	if s.failEvery > 0 && s.calls.Add(1)%s.failEvery == 0 {
		return nil, status.Error(codes.Unavailable, s.name+": failing this call on purpose")
	}
	if d, ok := strings.CutPrefix(in.GetValue(), "sleep="); ok {
		wait, err := time.ParseDuration(d)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "sleep: %v", err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return wrapperspb.String(s.name), nil
}
