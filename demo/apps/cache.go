package apps

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"
)

// The cache speaks a line protocol, one command per line, one reply per
// command:
//
//	SET key value  ->  OK         (value is the rest of the line)
//	GET key        ->  VALUE value | MISS
//	PING           ->  PONG
//	anything else  ->  ERR reason
//
// Command names are case-insensitive and a trailing "\r" is ignored, so
// `nc` and `telnet` work.
const (
	// cacheMaxLine bounds a command line; a longer one ends the connection.
	cacheMaxLine = 64 << 10
	// cacheMaxKeys bounds the store; a new key past it evicts an arbitrary one.
	cacheMaxKeys = 10000
)

// runCache serves the cache line protocol over TCP.
//
// Flags: --listen ADDR.
func runCache(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("cache", stdout)
	addr := fs.String("listen", "127.0.0.1:0", "address to serve on")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger := newLog("cache", stdout)
	ln, err := listen(ctx, logger, *addr, "(tcp line protocol)")
	if err != nil {
		return err
	}
	srv := &cacheServer{log: logger, store: newCacheStore(), conns: map[net.Conn]struct{}{}}
	return srv.serve(ctx, ln)
}

// cacheServer owns its listener and one goroutine per connection.
type cacheServer struct {
	log   *log.Logger
	store *cacheStore

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// serve accepts until ctx is cancelled, then closes every connection and
// waits for their goroutines.
func (s *cacheServer) serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var err error
	for {
		var c net.Conn
		if c, err = ln.Accept(); err != nil {
			break
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer s.untrack(c)
			s.handle(c)
		})
	}

	if ctx.Err() != nil {
		s.log.Printf("shutting down")
		err = nil
	}
	ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close() // unblocks the connection's read
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *cacheServer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// handle answers commands on c until the peer closes it or it is closed on
// shutdown.
func (s *cacheServer) handle(c net.Conn) {
	peer := c.RemoteAddr()
	s.log.Printf("connection from %s opened", peer)
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriter(c)
	err := func() error {
		for {
			line, err := readLine(r, cacheMaxLine)
			if err != nil {
				return err
			}
			if _, err := w.WriteString(s.store.exec(line)); err != nil {
				return err
			}
			// Flush only when no pipelined command is waiting.
			if r.Buffered() == 0 {
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
	}()
	if errors.Is(err, errLineTooLong) {
		w.WriteString("ERR line too long\n")
		w.Flush()
		lingerClose(c)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.log.Printf("connection from %s closed: %v", peer, err)
		return
	}
	s.log.Printf("connection from %s closed", peer)
}

var errLineTooLong = errors.New("line too long")

// lingerClose half-closes c and discards what the peer still sends for a
// moment, as net/http does: closing with unread input would send a reset
// that can destroy the reply before the peer reads it.
func lingerClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c, cacheMaxLine))
}

// readLine reads one "\n"-terminated line of at most limit bytes, without
// its line ending.
func readLine(r *bufio.Reader, limit int) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit+2 { // room for "\r\n"
			return "", errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// cacheStore is the cache's key space.
type cacheStore struct {
	mu   sync.Mutex
	data map[string]string
}

func newCacheStore() *cacheStore {
	return &cacheStore{data: map[string]string{}}
}

// exec runs one command line and returns its reply, newline included.
func (s *cacheStore) exec(line string) string {
	name, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(name) {
	case "SET":
		key, value, ok := strings.Cut(rest, " ")
		if !ok || !validKey(key) {
			return "ERR usage: SET key value\n"
		}
		s.set(key, value)
		return "OK\n"
	case "GET":
		if !validKey(rest) {
			return "ERR usage: GET key\n"
		}
		value, ok := s.get(rest)
		if !ok {
			return "MISS\n"
		}
		return "VALUE " + value + "\n"
	case "PING":
		if rest != "" {
			return "ERR usage: PING\n"
		}
		return "PONG\n"
	case "":
		return "ERR empty command\n"
	default:
		return fmt.Sprintf("ERR unknown command %q\n", name)
	}
}

// validKey accepts a non-empty key without spaces.
func validKey(key string) bool {
	return key != "" && !strings.ContainsAny(key, " \n")
}

func (s *cacheStore) set(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; !ok && len(s.data) >= cacheMaxKeys {
		for k := range s.data {
			delete(s.data, k)
			break
		}
	}
	s.data[key] = value
}

func (s *cacheStore) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}
