package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
)

// Reply topic levels under users/{user}/replies/{clientId}/.
const (
	replyKindRPC  = "rpc"
	replyKindCall = "call"
)

// newCorrelation returns correlation data unique to one request of this client.
func (c *Client) newCorrelation() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corrSeq++
	return c.corrBase + "-" + strconv.FormatUint(c.corrSeq, 10)
}

// deliverReply hands a reply to the call waiting for its correlation data. It runs on paho's
// router and never blocks.
func (c *Client) deliverReply(p *paho.Publish) {
	if p.Properties == nil {
		return
	}
	corr := string(p.Properties.CorrelationData)
	c.mu.Lock()
	ch, ok := c.pending[corr]
	delete(c.pending, corr)
	c.mu.Unlock()
	if !ok {
		c.log.Debug("reply to no pending call", logKeyTopic, p.Topic)
		return
	}
	ch <- p // buffered, and sent to once
}

// failPending ends every call waiting for a reply: the connection that would carry the replies
// is gone.
func (c *Client) failPending() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for corr, ch := range c.pending {
		close(ch)
		delete(c.pending, corr)
	}
}

// request publishes a request to topic with the response topic that responseTopic returns
// (under the client's replies, read once the request waits for its reply: it follows the
// connection's client id) and fresh correlation data, and waits for the reply.
func (c *Client) request(ctx context.Context, topic string, responseTopic func() string, payload []byte) (*paho.Publish, error) {
	if err := c.awaitReady(ctx); err != nil {
		return nil, err
	}
	corr := c.newCorrelation()
	ch := make(chan *paho.Publish, 1)
	c.mu.Lock()
	c.pending[corr] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, corr)
		c.mu.Unlock()
	}()
	err := c.publish(ctx, &paho.Publish{
		Topic:   topic,
		QoS:     1,
		Payload: payload,
		Properties: &paho.PublishProperties{
			ResponseTopic:   responseTopic(),
			CorrelationData: []byte(corr),
		},
	})
	if err != nil {
		return nil, err
	}
	select {
	case p, ok := <-ch:
		if !ok {
			return nil, ErrNotConnected
		}
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
}

// RPC calls the broker command (docs/protocol.md, "RPC to the broker") with args, a value
// encoded as the JSON object of named arguments (nil for none), and decodes the result into
// result unless it is nil. An error answer is an *Error; the typed methods of Client wrap
// every command.
func (c *Client) RPC(ctx context.Context, command string, args, result any) error {
	if args == nil {
		args = struct{}{}
	}
	payload, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("%s: encode arguments: %w", command, err)
	}
	p, err := c.request(ctx, wire.RPCPrefix+command, func() string { return c.repliesPrefix() + replyKindRPC }, payload)
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	// The result is decoded into result in the same pass as the answer (a history answer is
	// many kilobytes).
	var discard json.RawMessage
	resp := struct {
		Result any `json:"result"`
		Error  *struct {
			Code    Code   `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{Result: &discard}
	if result != nil {
		resp.Result = result
	}
	if err := json.Unmarshal(p.Payload, &resp); err != nil {
		return fmt.Errorf("%s: bad response: %w", command, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("%s: %w", command, &Error{Code: resp.Error.Code, Message: resp.Error.Message})
	}
	return nil
}

// User properties of device-to-device replies that carry an error.
const (
	propError        = "error"
	propErrorMessage = "errorMessage"
)

// Call sends a device-to-device request: it publishes payload to topic (for example
// devices/{id}/rpc/{method}) with a Response Topic under the client's
// users/{user}/replies/ (or Config.CallResponseTopic) and its own correlation data, and
// returns the payload of the reply.
// A responder that answers with user property "error" (as Handle does for a failed handler)
// makes Call return an *Error with that code and the "errorMessage" property as its message.
// A request nobody answers waits until ctx ends.
func (c *Client) Call(ctx context.Context, topic string, payload []byte) ([]byte, error) {
	p, err := c.request(ctx, topic, c.callResponseTopic, payload)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", topic, err)
	}
	if p.Properties != nil {
		if code := p.Properties.User.Get(propError); code != "" {
			return p.Payload, fmt.Errorf("call %s: %w", topic, &Error{Code: Code(code), Message: p.Properties.User.Get(propErrorMessage)})
		}
	}
	return p.Payload, nil
}

// Request is a device-to-device request received by a Handle handler.
type Request struct {
	// Topic is the topic the request was published to.
	Topic string
	// Payload is the request's payload.
	Payload []byte
	// ResponseTopic and CorrelationData are where the reply goes and what it carries;
	// ResponseTopic is empty for a request that wants no reply.
	ResponseTopic   string
	CorrelationData []byte
	// UserProperties are the request's user properties.
	UserProperties map[string]string
}

// RequestHandler answers a request: the returned bytes are the reply's payload. A non-nil
// error is sent instead, as user properties "error" (the code of an *Error, else
// internalError) and "errorMessage"; Call turns them back into an *Error.
type RequestHandler func(ctx context.Context, req Request) ([]byte, error)

// Handle subscribes to topicFilter (a plain MQTT filter, possibly with wildcards or a
// $share/ prefix) and answers each request on it with h, publishing the reply to the
// request's response topic with its correlation data. Each request runs on its own goroutine
// owned by the client, with a context that ends at Close. The subscription is restored after
// a reconnect. Handling a filter again replaces its handler.
func (c *Client) Handle(ctx context.Context, topicFilter string, h RequestHandler) error {
	if h == nil {
		return errors.New("client: Handle needs a handler")
	}
	if err := c.awaitReady(ctx); err != nil {
		return fmt.Errorf("handle %s: %w", topicFilter, err)
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	c.handlers[topicFilter] = h
	c.mu.Unlock()
	if err := c.subscribe(ctx, c.manager(), nil, paho.SubscribeOptions{Topic: topicFilter, QoS: 1}); err != nil {
		c.mu.Lock()
		delete(c.handlers, topicFilter)
		c.mu.Unlock()
		return fmt.Errorf("handle %s: %w", topicFilter, err)
	}
	return nil
}

// Unhandle stops answering requests on topicFilter and unsubscribes from it.
func (c *Client) Unhandle(ctx context.Context, topicFilter string) error {
	if err := c.awaitReady(ctx); err != nil {
		return fmt.Errorf("unhandle %s: %w", topicFilter, err)
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	delete(c.handlers, topicFilter)
	c.mu.Unlock()
	if _, err := c.manager().Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{topicFilter}}); err != nil {
		return fmt.Errorf("unhandle %s: %w", topicFilter, connErr(err))
	}
	return nil
}

// handleRequest runs the handler of a request on a goroutine of its own. It runs on the
// dispatcher.
func (c *Client) handleRequest(p *paho.Publish) {
	c.mu.Lock()
	var h RequestHandler
	for f, fh := range c.handlers {
		filter := f
		if shared, ok := wire.SharedFilter(f); ok {
			filter = shared
		}
		if wire.MatchTopic(filter, p.Topic) {
			h = fh
			break
		}
	}
	c.mu.Unlock()
	if h == nil {
		c.log.Debug("message on no handled topic", logKeyTopic, p.Topic)
		return
	}
	req := Request{Topic: p.Topic, Payload: p.Payload, UserProperties: map[string]string{}}
	if p.Properties != nil {
		req.ResponseTopic = p.Properties.ResponseTopic
		req.CorrelationData = p.Properties.CorrelationData
		for _, up := range p.Properties.User {
			req.UserProperties[up.Key] = up.Value
		}
	}
	c.start(func() { c.answer(h, req) })
}

// answer runs h for req and publishes the reply.
func (c *Client) answer(h RequestHandler, req Request) {
	out, err := h(c.ctx, req)
	if req.ResponseTopic == "" {
		return
	}
	props := &paho.PublishProperties{CorrelationData: req.CorrelationData}
	if err != nil {
		code := CodeInternalError
		var e *Error
		if errors.As(err, &e) {
			code = e.Code
		}
		props.User = paho.UserProperties{{Key: propError, Value: string(code)}, {Key: propErrorMessage, Value: err.Error()}}
		out = nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, DefaultSetupTimeout)
	defer cancel()
	if err := c.publish(ctx, &paho.Publish{Topic: req.ResponseTopic, QoS: 1, Payload: out, Properties: props}); err != nil {
		c.log.Warn("reply to request", logKeyTopic, req.Topic, logKeyError, err)
	}
}
