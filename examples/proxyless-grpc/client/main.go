// Command client calls the example's Echo service and prints one line per
// call: "ok <server name> <duration>" or "error <code> <duration>: <message>". With an xds:///
// target it is a proxyless client: it resolves the service, picks routes
// and endpoints and secures the connection as the control plane in
// $GRPC_XDS_BOOTSTRAP says. Any other target is dialled in plaintext (a
// sidecar's upstream port).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and balancers

	"github.com/weftmesh/weft/examples/proxyless-grpc/echo"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ",") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run() error {
	target := flag.String("target", "xds:///echo", "xds:///SERVICE[.NAMESPACE], or HOST:PORT of a sidecar's upstream")
	n := flag.Int("n", 1, "number of calls")
	every := flag.Duration("every", 0, "pause between calls")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of each call")
	message := flag.String("message", "", `message to send ("sleep=DURATION" makes the server wait; default "call N")`)
	var hdrs headers
	flag.Var(&hdrs, "header", "NAME=VALUE metadata sent with each call (repeatable)")
	flag.Parse()

	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if strings.HasPrefix(*target, "xds:") {
		c, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
		if err != nil {
			return fmt.Errorf("xds credentials: %w", err)
		}
		creds = c
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *target, err)
	}
	defer conn.Close()

	var md []string
	for _, h := range hdrs {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			return fmt.Errorf("-header %q: want NAME=VALUE", h)
		}
		md = append(md, k, v)
	}
	for i := range *n {
		if i > 0 && *every > 0 {
			time.Sleep(*every)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
		msg := *message
		if msg == "" {
			msg = fmt.Sprintf("call %d", i)
		}
		start := time.Now()
		got, err := echo.Say(ctx, conn, msg)
		took := time.Since(start).Round(time.Millisecond)
		cancel()
		if err != nil {
			s := status.Convert(err)
			fmt.Printf("error %s %s: %s\n", s.Code(), took, s.Message())
			continue
		}
		fmt.Printf("ok %s %s\n", got, took)
	}
	return nil
}
