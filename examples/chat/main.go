// Command chat joins a roomq room, prints its messages and posts each line read from stdin.
//
//	go run ./examples/chat -url tcp://localhost:1883 -user alice -room general
//
// It keeps its place across reconnects: stop the broker's connection and the messages posted
// meanwhile are printed once it is back.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/roomq/roomq/client"
)

func main() {
	url := flag.String("url", "tcp://localhost:1883", "broker URL: tcp://, tls://, ws://host:8080/mqtt or wss://")
	user := flag.String("user", "", "user name (required)")
	password := flag.String("password", "", "password, if the broker checks them")
	room := flag.String("room", "general", "room to join")
	flag.Parse()
	if *user == "" {
		fmt.Fprintln(os.Stderr, "chat: -user is required")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := client.Config{ServerURLs: []string{*url}, User: *user, Password: []byte(*password), Logger: logger}
	if err := run(ctx, cfg, *room, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run joins room, writes its messages (and direct messages) to out and posts each line of in,
// until in ends or ctx does.
func run(ctx context.Context, cfg client.Config, room string, in io.Reader, out io.Writer) error {
	// Callbacks run one at a time on the client's goroutine, so they may share out.
	cfg.OnDirectMessage = func(m client.DirectMessage) {
		fmt.Fprintf(out, "(direct) %s: %s\n", m.Author, m.Text)
	}
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.Connect(connectCtx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(closeCtx)
	}()

	err = c.Join(ctx, room, func(m client.Message) {
		text := m.Text()
		if text == "" {
			text = string(m.Payload)
		}
		fmt.Fprintf(out, "[%d %s] %s: %s\n", m.ID, m.Timestamp.Format(time.TimeOnly), m.Author, text)
	}, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "joined %s as %s; type a line to post it, Ctrl-D to quit\n", room, c.User())

	lines := make(chan string)
	go func() { // ends at the end of in; main returning ends the process
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if line == "" {
				continue
			}
			if err := c.SendText(ctx, room, line); err != nil {
				if errors.Is(err, client.ErrClosed) {
					return err
				}
				fmt.Fprintln(os.Stderr, "not sent:", err)
			}
		}
	}
}
