package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/wire"
)

// Device-to-device RPC.
//
// A request is a PUBLISH with a Response Topic (v3.1.1: the payload envelope of broker RPC,
// {"args", "responseTopic", "correlationData"}). A response topic under users/ must be the
// requester's own users/{user}/replies/...: the client that is delivered such a request gets
// the right to publish there once, within ReplyTimeout, on any instance (the rights are in the
// store, by client id); every other publish under users/{user}/replies/ is refused.
//
// v3.1.1 clients cannot carry properties, so the broker translates at the edges: a v3.1.1
// request's envelope becomes the properties of a v5 request (the payload becomes its args),
// and a request delivered to a v3.1.1 client becomes the envelope again; the correlation data
// of a v5 reply is added to the JSON object payload delivered to a v3.1.1 requester, and the
// "correlationData" of a v3.1.1 reply becomes the property of the reply. Correlation data
// travels as a JSON string in envelopes.

// DefaultReplyTimeout is how long a client that received a request may answer it.
const DefaultReplyTimeout = 60 * time.Second

var errForgedReply = errors.New("no request to answer on this topic")

// request reads the response topic and correlation data of a client's PUBLISH to a plain
// topic. A v3.1.1 client's envelope is turned into properties, its args into the payload. It
// returns an error for a response topic under another user's users/.
func (r *Router) request(c *conn, pk *packets.Packet) error {
	if c.cl.Properties.ProtocolVersion < 5 && pk.Properties.ResponseTopic == "" {
		var env rpcEnvelope
		if json.Unmarshal(pk.Payload, &env) == nil && env.ResponseTopic != "" {
			pk.Properties.ResponseTopic = env.ResponseTopic
			pk.Properties.CorrelationData = correlationBytes(env.CorrelationData)
			pk.Payload = env.Args
			if len(pk.Payload) == 0 {
				pk.Payload = []byte("{}")
			}
		}
	}
	rt := pk.Properties.ResponseTopic
	if rt == "" || !strings.HasPrefix(rt, wire.UsersPrefix) {
		return nil // no request, or answered on a plain topic: no rights involved
	}
	if wire.IsWildcard(rt) || !strings.HasPrefix(rt, wire.UserRepliesPrefix(c.session.Identity.User)) {
		return errors.New("response topic outside the requester's users/{user}/replies/")
	}
	return nil
}

// reply checks a client's PUBLISH to users/{user}/replies/...: it spends one of the client's
// rights to answer there. The "correlationData" of a v3.1.1 reply becomes its property.
func (r *Router) reply(c *conn, pk *packets.Packet) error {
	if r.opts.Replies == nil {
		return errForgedReply
	}
	ctx, cancel := r.ctx()
	defer cancel()
	ok, err := r.opts.Replies.UseReply(ctx, c.cl.ID, pk.TopicName)
	if err != nil {
		return err
	}
	if !ok {
		return errForgedReply
	}
	if c.cl.Properties.ProtocolVersion < 5 && pk.Properties.CorrelationData == nil {
		var body struct {
			CorrelationData json.RawMessage `json:"correlationData"`
		}
		if json.Unmarshal(pk.Payload, &body) == nil && body.CorrelationData != nil {
			pk.Properties.CorrelationData = correlationBytes(body.CorrelationData)
		}
	}
	return nil
}

// OnPacketEncode grants the receiver of a request the right to answer it, and translates
// requests and replies for v3.1.1 receivers.
func (r *Router) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk
	}
	v3 := cl.Properties.ProtocolVersion < 5
	if rt := pk.Properties.ResponseTopic; rt != "" && !strings.HasPrefix(pk.TopicName, wire.RPCPrefix) {
		if strings.HasPrefix(rt, wire.UsersPrefix) && r.opts.Replies != nil {
			ctx, cancel := r.ctx()
			err := r.opts.Replies.GrantReply(ctx, cl.ID, rt, r.opts.ReplyTimeout)
			cancel()
			if err != nil {
				r.log.Warn("grant the right to reply", logKeyClient, cl.ID, logKeyTopic, rt, logKeyError, err)
			}
		}
		if v3 {
			args := json.RawMessage(pk.Payload)
			if !json.Valid(args) {
				args, _ = json.Marshal(string(pk.Payload))
			}
			corr, _ := json.Marshal(string(pk.Properties.CorrelationData))
			pk.Payload, _ = json.Marshal(rpcEnvelope{Args: args, ResponseTopic: rt, CorrelationData: corr})
		}
		return pk
	}
	if v3 && pk.Properties.CorrelationData != nil && wire.ParseTopic(pk.TopicName).Kind == wire.TopicUserReplies {
		pk.Payload = withCorrelation(pk.Payload, pk.Properties.CorrelationData)
	}
	return pk
}

// withCorrelation adds "correlationData" to a JSON object payload that lacks it.
func withCorrelation(payload, correlation []byte) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(payload, &obj) != nil || obj == nil {
		return payload
	}
	if _, ok := obj["correlationData"]; ok {
		return payload
	}
	obj["correlationData"], _ = json.Marshal(string(correlation))
	out, err := json.Marshal(obj)
	if err != nil {
		return payload
	}
	return out
}

// correlationBytes returns the correlation data of an envelope: the content of a JSON
// string, or the JSON text of any other value.
func correlationBytes(raw json.RawMessage) []byte {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return bytes.TrimSpace(raw)
}
