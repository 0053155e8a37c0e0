package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/roomq/roomq/client"
)

// Join a room, post to it, and call a broker command.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Config{
		ServerURLs: []string{"tcp://localhost:1883"},
		User:       "alice",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()

	// Messages arrive in id order on the client's callback goroutine, once each, also across
	// reconnects.
	err = c.Join(ctx, "general", func(m client.Message) {
		fmt.Printf("#%d %s: %s\n", m.ID, m.Author, m.Text())
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.SendText(ctx, "general", "hello"); errors.Is(err, client.ErrRateLimited) {
		log.Print("slow down")
	}
	if err := c.RoomCreate(ctx, "general", nil); errors.Is(err, client.ErrRoomExists) {
		log.Print("general exists already")
	}
}

// Answer device-to-device requests and call them.
func ExampleClient_Handle() {
	ctx := context.Background()
	device, err := client.Dial(ctx, "tcp://localhost:1883", "lamp-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	err = device.Handle(ctx, "devices/lamp-1/rpc/+", func(ctx context.Context, req client.Request) ([]byte, error) {
		return []byte(`{"on":true}`), nil
	})
	if err != nil {
		log.Fatal(err)
	}

	app, err := client.Dial(ctx, "tcp://localhost:1883", "alice", nil)
	if err != nil {
		log.Fatal(err)
	}
	reply, err := app.Call(ctx, "devices/lamp-1/rpc/state", nil)
	fmt.Println(string(reply), err)
}
