package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/wire"
)

// OnPublish routes a client's PUBLISH: room messages go through the room's checker and history
// and are delivered by the router in id order; direct messages and RPC requests run their
// command; broker-only and other users' topics are refused; plain topics are left to Mochi.
func (r *Router) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl == r.remote {
		return pk, nil // forwarded by another instance, which stored it
	}
	if cl.Net.Inline { // a will on a plain topic
		version, err := r.storeRetained(&pk)
		if err != nil {
			r.log.Error("store retained will", logKeyTopic, pk.TopicName, logKeyError, err)
		}
		r.forward(pk, version)
		return pk, nil
	}
	c, ok := r.conn(cl)
	if !ok {
		return pk, packets.ErrRejectPacket
	}
	caller := commands.Caller{Identity: c.session.Identity, ClientID: cl.ID, Conn: c.hook}
	t := wire.ParseTopic(pk.TopicName)
	r.opts.Metrics.MessageIn(messageKind(t.Kind))
	if c.limiter != nil && !c.limiter.Allow() {
		c.posts.drained() // acknowledgements go in order
		if t.Kind == wire.TopicRPC {
			return r.rpc(c, pk, t.Name, errRateLimited)
		}
		return r.refuse(cl, pk, packets.ErrQuotaExceeded, errRateLimited)
	}
	if t.Kind == wire.TopicRoom && pk.FixedHeader.Qos < 2 {
		from, err := roomOrigin(pk)
		if err != nil {
			c.posts.drained()
			return r.refuse(cl, pk, reasonFor(err), err)
		}
		return r.postRoom(c, caller, t.Name, pk, from)
	}
	c.posts.drained() // what follows a room post sees it
	switch t.Kind {
	case wire.TopicRoom: // at QoS 2
		ctx, cancel := r.ctx()
		defer cancel()
		from, err := roomOrigin(pk)
		if err == nil {
			_, err = r.commands.PostRoomFrom(ctx, caller, t.Name, pk.Payload, from)
		}
		if errors.Is(err, rooms.ErrDuplicate) {
			return r.refuse(cl, pk, packets.CodeSuccess, err) // stored the first time
		}
		if err != nil {
			return r.refuse(cl, pk, reasonFor(err), err)
		}
		return pk, packets.CodeSuccessIgnore // delivered by the room, in id order
	case wire.TopicUserInbox:
		ctx, cancel := r.ctx()
		defer cancel()
		if _, err := r.commands.SendDirect(ctx, caller, t.Name, pk.Payload); err != nil {
			return r.refuse(cl, pk, reasonFor(err), err)
		}
		return pk, packets.CodeSuccessIgnore
	case wire.TopicRPC:
		return r.rpc(c, pk, t.Name, nil)
	case wire.TopicUserReplies:
		if err := r.reply(c, &pk); err != nil {
			if errors.Is(err, errForgedReply) {
				return r.refuse(cl, pk, packets.ErrNotAuthorized, err)
			}
			return r.refuse(cl, pk, packets.ErrServerUnavailable, err)
		}
		r.forward(pk, 0)
		return pk, nil
	}
	if r.policy.PublishDecision(c.session.Identity, cl.ID, pk.TopicName, t) != acl.Allow {
		return r.refuse(cl, pk, packets.ErrNotAuthorized, errors.New("topic not allowed"))
	}
	if err := r.request(c, &pk); err != nil {
		return r.refuse(cl, pk, packets.ErrNotAuthorized, err)
	}
	version, err := r.storeRetained(&pk)
	if err != nil {
		return r.refuse(cl, pk, packets.ErrServerUnavailable, err)
	}
	r.forward(pk, version)
	return pk, nil
}

// roomOrigin returns where a room PUBLISH was first posted: a bridge's message keeps it
// (docs/protocol.md, bridges); the zero Origin for a message posted here.
func roomOrigin(pk packets.Packet) (wire.Origin, error) {
	return wire.ParseOrigin(userProperty(pk, wire.PropOriginBroker), userProperty(pk, wire.PropOriginID), userProperty(pk, wire.PropOriginEpoch))
}

// refuse answers a refused PUBLISH. v5 clients at QoS 1 or 2 get the reason code in the PUBACK
// or PUBREC (Mochi would answer QoS 2 with a PUBACK); otherwise the message is dropped, as
// v3.1.1 has no way to say no. Either way it is logged once and never delivered.
func (r *Router) refuse(cl *mqtt.Client, pk packets.Packet, code packets.Code, cause error) (packets.Packet, error) {
	if code.Code < packets.ErrUnspecifiedError.Code {
		// A success-class code (0x10 no matching subscribers): accepted, nothing to deliver.
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
			_ = cl.WritePacket(ack(pk.PacketID, packets.Puback, code))
			return pk, packets.ErrRejectPacket
		}
		return pk, packets.CodeSuccessIgnore
	}
	r.opts.Metrics.Refused(code)
	level := slog.LevelInfo
	if errors.Is(cause, errRateLimited) {
		level = slog.LevelDebug // a flood must not flood the log too
	}
	r.log.Log(context.Background(), level, "publish refused", logKeyClient, cl.ID, logKeyTopic, pk.TopicName, logKeyReason, code.Reason, logKeyError, cause)
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		kind := byte(packets.Puback)
		if pk.FixedHeader.Qos == 2 {
			kind = packets.Pubrec
		}
		_ = cl.WritePacket(ack(pk.PacketID, kind, code))
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

func ack(id uint16, kind byte, code packets.Code) packets.Packet {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: kind},
		PacketID:    id,
		ReasonCode:  code.Code,
	}
	if code.Code != 0 {
		// Mochi writes a success-class reason code (0x10) only when the ack has properties,
		// so the reason string is what makes 0x10 reach the client.
		pk.Properties.ReasonString = code.Reason
	}
	return pk
}

// reasonFor maps an error of a command to the reason code of a refused PUBLISH.
func reasonFor(err error) packets.Code {
	var tooLarge *rooms.SizeError
	if errors.As(err, &tooLarge) {
		return packets.ErrPacketTooLarge
	}
	switch wire.CodeOf(err) {
	case wire.CodeBadMessage:
		return packets.ErrPayloadFormatInvalid
	case wire.CodeNotAllowed, wire.CodeNoRoom, wire.CodeInvalidName, wire.CodeNotJoined:
		return packets.ErrNotAuthorized
	case wire.CodeNoUserOnline:
		return packets.CodeNoMatchingSubscribers
	case wire.CodeRateLimited:
		return packets.ErrQuotaExceeded
	case wire.CodeStoreUnavailable:
		return packets.ErrServerUnavailable
	case wire.CodeBadArgument:
		return packets.ErrPayloadFormatInvalid
	}
	return packets.ErrUnspecifiedError
}

// exec runs a command, turning a panic into an internal error: the broker keeps running.
func (r *Router) exec(ctx context.Context, c commands.Caller, command string, args json.RawMessage) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("command %s panicked: %v", command, p)
		}
	}()
	return r.commands.Exec(ctx, c, command, args)
}

// rpcEnvelope is the v3.1.1 form of an RPC request.
type rpcEnvelope struct {
	Args            json.RawMessage `json:"args"`
	ResponseTopic   string          `json:"responseTopic"`
	CorrelationData json.RawMessage `json:"correlationData"`
}

// rpcResponse is the payload of an RPC response.
type rpcResponse struct {
	Result          any             `json:"result,omitempty"`
	Error           *wire.Error     `json:"error,omitempty"`
	CorrelationData json.RawMessage `json:"correlationData,omitempty"`
}

// encodeResponse encodes resp. A result that is JSON already (json.RawMessage, such as a
// history) is copied as it is: encoding/json would check and compact it byte by byte again.
func encodeResponse(resp rpcResponse) ([]byte, error) {
	raw, ok := resp.Result.(json.RawMessage)
	if !ok || resp.Error != nil {
		return json.Marshal(resp)
	}
	out := make([]byte, 0, len(raw)+len(resp.CorrelationData)+32)
	out = append(out, `{"result":`...)
	out = append(out, raw...)
	if len(resp.CorrelationData) > 0 {
		out = append(out, `,"correlationData":`...)
		out = append(out, resp.CorrelationData...)
	}
	return append(out, '}'), nil
}

// errRateLimited is the error of a PUBLISH over the connection's rate limit.
var errRateLimited = wire.NewError(wire.CodeRateLimited, "publish rate limit exceeded")

// rpc runs an RPC request and publishes the response on the caller's response topic. The
// request is acknowledged as received; failures of the command travel in the response. A
// response topic outside users/{user}/ of the caller is refused. A non-nil refusal is answered
// instead of running the command.
func (r *Router) rpc(c *conn, pk packets.Packet, command string, refusal error) (packets.Packet, error) {
	start := time.Now()
	args := json.RawMessage(pk.Payload)
	responseTopic := pk.Properties.ResponseTopic
	correlation := pk.Properties.CorrelationData
	var envelope *rpcEnvelope
	if c.cl.Properties.ProtocolVersion < 5 || responseTopic == "" {
		var env rpcEnvelope
		if json.Unmarshal(pk.Payload, &env) == nil && env.ResponseTopic != "" {
			envelope = &env
			args, responseTopic = env.Args, env.ResponseTopic
		}
	}
	user := c.session.Identity.User
	if responseTopic != "" && (!bytes.HasPrefix([]byte(responseTopic), []byte(wire.UserNamespace(user))) || wire.IsWildcard(responseTopic)) {
		return r.refuse(c.cl, pk, packets.ErrNotAuthorized, errors.New("response topic outside the caller's namespace"))
	}

	ctx, cancel := r.ctx()
	defer cancel()
	var resp rpcResponse
	var result any
	var err error
	switch {
	case refusal != nil:
		err = refusal
	case !json.Valid(args) && len(bytes.TrimSpace(args)) > 0:
		err = wire.NewError(wire.CodeBadArgument, "arguments: invalid JSON")
	default:
		result, err = r.exec(ctx, commands.Caller{Identity: c.session.Identity, ClientID: c.cl.ID, Conn: c.hook}, command, args)
	}
	if err != nil {
		resp.Error = wire.AsError(err)
		r.opts.Metrics.RPC(command, string(resp.Error.Code), time.Since(start))
		if resp.Error.Code == wire.CodeInternalError {
			r.log.Error("command failed", logKeyClient, c.cl.ID, logKeyCommand, command, logKeyError, err)
		}
	} else {
		r.opts.Metrics.RPC(command, "", time.Since(start))
		resp.Result = result
		if resp.Result == nil {
			resp.Result = struct{}{}
		}
	}
	if responseTopic == "" {
		return pk, packets.CodeSuccessIgnore
	}
	props := packets.Properties{}
	if envelope != nil {
		resp.CorrelationData = envelope.CorrelationData
	} else {
		props.CorrelationData = correlation
	}
	payload, mErr := encodeResponse(resp)
	if mErr != nil {
		r.log.Error("encode response", logKeyCommand, command, logKeyError, mErr)
		return pk, packets.CodeSuccessIgnore
	}
	r.publish(message{topic: responseTopic, payload: payload, qos: 1, props: props}, "")
	return pk, packets.CodeSuccessIgnore
}

// userProperty returns the value of pk's first user property named key, "" without one.
func userProperty(pk packets.Packet, key string) string {
	for _, p := range pk.Properties.User {
		if p.Key == key {
			return p.Val
		}
	}
	return ""
}
