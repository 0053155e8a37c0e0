package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server or a cluster may take to become ready.
const startTimeout = 30 * time.Second

// pollInterval is the pause between two readiness checks.
const pollInterval = 10 * time.Millisecond

// Standalone starts a redis-server without persistence on a free loopback port and returns its
// address (host:port). The server is killed when the test ends.
func Standalone(t testing.TB) string {
	t.Helper()
	return start(t, "standalone", false).addr
}

// Cluster starts a Redis Cluster of three masters without replicas or persistence, each on
// free loopback ports, and returns their addresses. It returns once every node reports
// cluster_state:ok and knows the others. The servers are killed when the test ends.
func Cluster(t testing.TB) []string {
	t.Helper()
	const n = 3
	nodes := make([]*server, n)
	for i := range nodes {
		nodes[i] = start(t, fmt.Sprint("cluster-", i), true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	clients := make([]*redis.Client, n)
	for i, s := range nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			t.Fatalf("redistest: %s: CLUSTER SET-CONFIG-EPOCH: %v", nodes[i].addr, err)
		}
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: %s: CLUSTER ADDSLOTSRANGE: %v", nodes[i].addr, err)
		}
	}
	for _, s := range nodes[1:] {
		host, port, _ := net.SplitHostPort(s.addr)
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, s.busPort).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", s.addr, err)
		}
	}
	addrs := make([]string, n)
	for i, s := range nodes {
		addrs[i] = s.addr
	}
	waitFor(t, ctx, "the cluster to form", func() error {
		for i, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: %w", addrs[i], err)
			}
			if !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				return fmt.Errorf("%s: not ready: %q", addrs[i], info)
			}
		}
		return nil
	})
	return addrs
}

// server is one redis-server process.
type server struct {
	addr    string
	busPort int
	cmd     *exec.Cmd
	log     string
	done    chan struct{} // closed when the process has exited
}

// start starts a redis-server on free ports, a Cluster node when cluster is true, retrying a
// few times when it cannot bind its ports, and kills it when the test ends. name names its
// directory.
func start(t testing.TB, name string, cluster bool) *server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redistest: redis-server is not installed (scripts/test installs redis-server)")
		}
		t.Skip("redistest: redis-server is not installed; skipping (scripts/test installs it)")
	}
	var lastErr error
	for range 5 {
		s, err := tryStart(t, path, name, cluster)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

func tryStart(t testing.TB, path, name string, cluster bool) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	s := &server{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		busPort: ports[1],
		log:     filepath.Join(dir, "redis.log"),
		done:    make(chan struct{}),
	}
	args := []string{
		"--port", strconv.Itoa(ports[0]),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", s.log,
		"--daemonize", "no",
	}
	if cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
		)
	}
	s.cmd = exec.Command(path, args...)
	s.cmd.Dir = dir
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited: %s", s.addr, s.tail())
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("%s did not answer PING within %v: %s", s.addr, startTimeout, s.tail())
		default:
		}
		if ping(s.addr) == nil {
			t.Cleanup(s.stop)
			return s, nil
		}
		select {
		case <-s.done:
		case <-time.After(pollInterval):
		}
	}
}

// stop kills the server and waits for it to exit.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// tail returns the end of the server's log.
func (s *server) tail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ping sends PING over a new connection and checks for PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", buf[:n])
	}
	return nil
}

// portsMu keeps concurrent callers in one process from getting the same ports.
var portsMu sync.Mutex

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor calls check until it returns nil, and fails t with its last error when ctx ends.
func waitFor(t testing.TB, ctx context.Context, what string, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: waiting for %s: %v", what, errors.Join(err, ctx.Err()))
		case <-time.After(pollInterval):
		}
	}
}
