package hooks

import (
	"context"
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/wire"
)

// The glue between the MQTT hooks and commands.Hooks: the connection hooks of a client, and
// the reason codes of their refusals.

// runConnectHooks runs the connect hooks of an authenticated client and keeps its
// commands.Connection. It answers a refusal with a CONNACK and returns the error that makes
// Mochi close the connection.
func (a *Auth) runConnectHooks(ctx context.Context, cl *mqtt.Client, id acl.Identity) error {
	conn := &commands.Connection{
		Identity:        id,
		ClientID:        cl.ID,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		ProtocolVersion: cl.Properties.ProtocolVersion,
	}
	if err := a.hooks.Connect(ctx, conn); err != nil {
		v5, v3 := connectRefusalCodes(err)
		if v5 == packets.ErrUnspecifiedError {
			a.log.Error("connection refused", logKeyClient, cl.ID, logKeyUser, id.User, logKeyReason, "connect hook failed", logKeyError, err)
		} else {
			a.log.Info("connection refused", logKeyClient, cl.ID, logKeyUser, id.User, logKeyReason, "connect hook", logKeyError, err)
		}
		return refuseConnect(cl, v5, v3)
	}
	a.mu.Lock()
	a.hooked[cl] = conn
	a.mu.Unlock()
	return nil
}

// Connection returns the commands.Connection of an authenticated client: what the connect
// hooks saw and attached.
func (a *Auth) Connection(cl *mqtt.Client) *commands.Connection {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.hooked[cl]
}

// connectRefusalCodes maps the error of a connect hook to CONNACK reason codes (v5, v3.1.1):
// a commands.ConnectRefusal's own code, notAllowed 0x87, storeUnavailable and timeout 0x88,
// rateLimited 0x9F, anything else 0x80 (unspecified error). [MQTT-3.2.2-6]
func connectRefusalCodes(err error) (packets.Code, packets.Code) {
	var refusal *commands.ConnectRefusal
	if errors.As(err, &refusal) && refusal.ReasonCode >= packets.ErrUnspecifiedError.Code {
		v5 := packets.Code{Code: refusal.ReasonCode, Reason: refusal.Reason}
		switch refusal.ReasonCode {
		case packets.ErrBadUsernameOrPassword.Code:
			return v5, packets.ErrMalformedUsernameOrPassword
		case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
			return v5, packets.Err3NotAuthorized
		case packets.ErrClientIdentifierNotValid.Code:
			return v5, packets.Err3ClientIdentifierNotValid
		case packets.ErrUnsupportedProtocolVersion.Code:
			return v5, packets.Err3UnsupportedProtocolVersion
		}
		return v5, packets.Err3ServerUnavailable
	}
	var we *wire.Error
	if errors.As(err, &we) {
		switch we.Code {
		case wire.CodeNotAllowed:
			return packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: we.Message}, packets.Err3NotAuthorized
		case wire.CodeStoreUnavailable, wire.CodeTimeout:
			return packets.ErrServerUnavailable, packets.Err3ServerUnavailable
		case wire.CodeRateLimited:
			return packets.ErrConnectionRateExceeded, packets.Err3ServerUnavailable
		}
	}
	return packets.ErrUnspecifiedError, packets.Err3ServerUnavailable
}

// commandHooks returns the hooks of the broker's commands.
func (r *Router) commandHooks() *commands.Hooks { return r.commands.Hooks() }

// refusedSubscription returns the SUBACK reason code of a join a hook refused: the code a
// refused PUBLISH would get (0x87 not authorized for notAllowed), 0x80 for v3.1.1.
func refusedSubscription(cl *mqtt.Client, err error) packets.Code {
	if cl.Properties.ProtocolVersion < 5 {
		return packets.ErrUnspecifiedError
	}
	code := reasonFor(err)
	if code.Code < packets.ErrUnspecifiedError.Code || code == packets.ErrPacketTooLarge || code == packets.ErrPayloadFormatInvalid {
		return packets.ErrUnspecifiedError
	}
	return code
}

// leaveIfJoined leaves room when connection c is joined to it, so that a refused SUBSCRIBE
// leaves no membership behind: a join an After hook failed after it happened, or a refused
// resubscription.
func (r *Router) leaveIfJoined(ctx context.Context, c *conn, room string) {
	c.mu.Lock()
	_, joined := c.rooms[room]
	c.mu.Unlock()
	if !joined {
		return
	}
	if _, err := r.leaveRoom(ctx, c, room); err != nil {
		r.log.Error("leave a refused room", logKeyClient, c.cl.ID, logKeyRoom, room, logKeyError, err)
	}
}
