package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// settleTime is how long the connections scenario waits, once every connection is up, before
// it measures the broker's memory: the broker's per-connection work after CONNACK (presence,
// store records) finishes meanwhile.
const settleTime = time.Second

// runConnections opens cfg.Conns idle MQTT v5 connections at cfg.ConnRate per second, with a
// keepalive longer than the run, and reports CONNECT-to-CONNACK latency and, when the broker's memory can be read,
// its growth per connection. The connections are raw sockets that sent CONNECT and read
// CONNACK, with no client goroutine, so the tool's own cost per connection stays small (a
// socket); for an in-process broker it is still counted in the memory figure.
func runConnections(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	d, err := newDialer(t.url, cfg.Sources)
	if err != nil {
		return Result{}, err
	}
	if n := raiseFileLimit(); n > 0 && uint64(cfg.Conns)*2+256 > n && t.inProcess {
		log.Warn("the file limit may be too low for the broker and the clients in one process", "limit", n, "conns", cfg.Conns)
	}
	var mem0 uint64
	memory := t.memory
	if memory != nil {
		if mem0, err = memory(); err != nil {
			log.Warn("broker memory not measured", "target", t.name, "error", err)
			memory = nil
		}
	}
	var errs errorLog
	conns := make([]net.Conn, cfg.Conns)
	hists := make([]histogram, connectParallelism)
	var attempted, established atomic.Uint64
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	phase := startLoad()
	start := phase.start
	stopProgress := progress(runCtx, log, t.name, start, func() []any {
		return []any{"attempted", attempted.Load(), "established", established.Load(), "errors", errs.n.Load()}
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range connectParallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.Conns) {
					return
				}
				if cfg.ConnRate > 0 {
					at := start.Add(time.Duration(float64(i) / cfg.ConnRate * float64(time.Second)))
					if wait := time.Until(at); wait > 0 {
						select {
						case <-runCtx.Done():
							return
						case <-time.After(wait):
						}
					}
				}
				attempted.Add(1)
				began := time.Now()
				c, err := rawConnect(runCtx, d, fmt.Sprintf("bench-conn-%d", i), fmt.Sprintf("%s-conn-%d", cfg.User, i), cfg.Password)
				if err != nil {
					errs.add(err)
					continue
				}
				hists[w].record(time.Since(began))
				conns[i] = c
				established.Add(1)
			}
		}()
	}
	wg.Wait()
	phase.stop()
	cancel()
	stopProgress()

	res := phase.result("connections/s")
	var hist histogram
	for i := range hists {
		hist.merge(&hists[i])
	}
	res.Sent, res.Delivered, res.Expected = attempted.Load(), established.Load(), uint64(cfg.Conns)
	res.Lost = res.Expected - res.Delivered
	res.Connections = int(res.Delivered)
	res.Rate = float64(res.Delivered) / res.Seconds
	res.SendRate = float64(res.Sent) / res.Seconds
	res.Latency = hist.summary()
	if memory != nil && res.Delivered > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(settleTime):
		}
		if mem1, err := memory(); err != nil {
			log.Warn("broker memory not measured", "target", t.name, "error", err)
		} else if mem1 > mem0 {
			res.MemPerConn = float64(mem1-mem0) / float64(res.Delivered)
			res.MemKind = t.memoryKind
			res.Notes = append(res.Notes, fmt.Sprintf("memory per connection: %s growth / %d connections", t.memoryKind, res.Delivered))
		}
	}
	res.Errors, res.FirstErrors = errs.n.Load(), errs.samples()
	return res, nil
}

// rawKeepAlive is the keepalive of raw connections, in seconds: longer than any run, so that
// they never need a PINGREQ.
const rawKeepAlive = 3600

// rawConnect opens a connection, sends an MQTT v5 CONNECT with a keepalive of an hour and
// reads the CONNACK.
func rawConnect(ctx context.Context, d *dialer, clientID, user, password string) (net.Conn, error) {
	c, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	cp := packets.NewControlPacket(packets.CONNECT)
	connect := cp.Content.(*packets.Connect)
	connect.ProtocolName, connect.ProtocolVersion = "MQTT", 5
	connect.ClientID, connect.CleanStart, connect.KeepAlive = clientID, true, rawKeepAlive
	connect.Username, connect.UsernameFlag = user, user != ""
	if password != "" {
		connect.Password, connect.PasswordFlag = []byte(password), true
	}
	connect.Properties = &packets.Properties{}
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := cp.WriteTo(c); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	ack, err := packets.ReadPacket(c)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	ca, ok := ack.Content.(*packets.Connack)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("got %s instead of CONNACK", ack.PacketType())
	}
	if ca.ReasonCode >= 0x80 {
		_ = c.Close()
		return nil, fmt.Errorf("CONNACK 0x%02x", ca.ReasonCode)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// raiseFileLimit raises the soft limit of open files to the hard limit and returns it (0 when
// unknown).
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}
