package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/internal/mqtttest"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The example posts a line read from its input and prints the room's messages.
func TestChat(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, w := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	cfg := client.Config{ServerURLs: []string{"tcp://" + b.MQTTAddr()}, User: "alice", Logger: mqtttest.TestLogger()}
	go func() { done <- run(ctx, cfg, "general", in, out) }()
	if _, err := io.WriteString(w, "hello room\n"); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, 10*time.Second, "the posted line printed", func() bool {
		return strings.Contains(out.String(), "] alice: hello room")
	})
	_ = w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
