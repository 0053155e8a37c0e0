package client

import (
	"errors"
	"fmt"

	"github.com/roomq/roomq/wire"
)

// Code is an error code of the wire contract (docs/protocol.md), such as "roomExists".
type Code = wire.Code

// The error codes of docs/protocol.md.
const (
	CodeBadArgument       = wire.CodeBadArgument
	CodeBadMessage        = wire.CodeBadMessage
	CodeInvalidName       = wire.CodeInvalidName
	CodeNoCommand         = wire.CodeNoCommand
	CodeNoRoom            = wire.CodeNoRoom
	CodeRoomExists        = wire.CodeRoomExists
	CodeNotJoined         = wire.CodeNotJoined
	CodeNotAllowed        = wire.CodeNotAllowed
	CodeNoList            = wire.CodeNoList
	CodeListLimitExceeded = wire.CodeListLimitExceeded
	CodeNoUser            = wire.CodeNoUser
	CodeNoUserOnline      = wire.CodeNoUserOnline
	CodeRateLimited       = wire.CodeRateLimited
	CodeTimeout           = wire.CodeTimeout
	CodeStoreUnavailable  = wire.CodeStoreUnavailable
	CodeInternalError     = wire.CodeInternalError
)

// Error is an error the broker (or a device-to-device responder) answered with: an RPC error
// object {"code", "message"}. errors.Is matches any *Error with the same Code, so
// errors.Is(err, client.ErrRoomExists) holds whatever the message.
type Error struct {
	// Code is the protocol error code.
	Code Code
	// Message is the human readable explanation the broker gave.
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// Sentinel errors for each protocol code, to compare with errors.Is.
var (
	// ErrBadArgument: an RPC argument is missing or has the wrong type.
	ErrBadArgument = &Error{Code: CodeBadArgument}
	// ErrBadMessage: the room's message checker refused the message (PUBACK 0x99).
	ErrBadMessage = &Error{Code: CodeBadMessage}
	// ErrInvalidName: a room or user name breaks the naming rules.
	ErrInvalidName = &Error{Code: CodeInvalidName}
	// ErrNoCommand: the broker has no such RPC command.
	ErrNoCommand = &Error{Code: CodeNoCommand}
	// ErrNoRoom: the room does not exist.
	ErrNoRoom = &Error{Code: CodeNoRoom}
	// ErrRoomExists: roomCreate of a room that exists.
	ErrRoomExists = &Error{Code: CodeRoomExists}
	// ErrNotJoined: reading a room needs to be joined (or its owner or an admin).
	ErrNotJoined = &Error{Code: CodeNotJoined}
	// ErrNotAllowed: the user may not do this (also PUBACK and SUBACK 0x87).
	ErrNotAllowed = &Error{Code: CodeNotAllowed}
	// ErrNoList: no access list of that name.
	ErrNoList = &Error{Code: CodeNoList}
	// ErrListLimitExceeded: the access list is full.
	ErrListLimitExceeded = &Error{Code: CodeListLimitExceeded}
	// ErrNoUser: no such user.
	ErrNoUser = &Error{Code: CodeNoUser}
	// ErrNoUserOnline: the user of a direct message has no connection.
	ErrNoUserOnline = &Error{Code: CodeNoUserOnline}
	// ErrRateLimited: over the connection's publish rate (also PUBACK 0x97).
	ErrRateLimited = &Error{Code: CodeRateLimited}
	// ErrTimeout: the broker timed out.
	ErrTimeout = &Error{Code: CodeTimeout}
	// ErrStoreUnavailable: the broker's store cannot answer; try again later.
	ErrStoreUnavailable = &Error{Code: CodeStoreUnavailable}
	// ErrInternalError: the broker failed.
	ErrInternalError = &Error{Code: CodeInternalError}
)

// Errors of the client itself.
var (
	// ErrClosed is returned by calls on a Client after Close, and by calls that were waiting
	// when Close ran.
	ErrClosed = errors.New("client: closed")
	// ErrTooLarge is the refusal of a message larger than the room's size limit (PUBACK 0x95).
	ErrTooLarge = errors.New("client: message too large")
	// ErrRefused is matched by every *PublishError and *SubscribeError: the broker refused
	// the packet with a reason code.
	ErrRefused = errors.New("client: refused by the broker")
	// ErrNotConnected means the connection dropped while a call was under way; the call may
	// or may not have taken effect.
	ErrNotConnected = errors.New("client: not connected")
)

// MQTT 5 reason codes the broker uses to refuse packets.
const (
	reasonNotAuthorized  = 0x87
	reasonPacketTooLarge = 0x95
	reasonQuotaExceeded  = 0x97
	reasonPayloadInvalid = 0x99
)

// codeOfReason maps a refusal reason code to the protocol error it stands for.
func codeOfReason(reason byte) error {
	switch reason {
	case reasonNotAuthorized:
		return ErrNotAllowed
	case reasonPayloadInvalid:
		return ErrBadMessage
	case reasonQuotaExceeded:
		return ErrRateLimited
	case reasonPacketTooLarge:
		return ErrTooLarge
	}
	return nil
}

// PublishError is a PUBLISH the broker refused with a PUBACK reason code. errors.Is matches
// ErrRefused and, by reason code: ErrNotAllowed (0x87), ErrBadMessage (0x99, payload format
// invalid), ErrTooLarge (0x95) and ErrRateLimited (0x97).
type PublishError struct {
	// Topic is the topic of the refused message.
	Topic string
	// ReasonCode is the PUBACK reason code.
	ReasonCode byte
	// Reason is the reason string of the PUBACK, if any.
	Reason string
}

// Error implements the error interface.
func (e *PublishError) Error() string {
	s := fmt.Sprintf("publish to %s refused with reason code 0x%02x", e.Topic, e.ReasonCode)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is reports whether target is ErrRefused or the error of the reason code.
func (e *PublishError) Is(target error) bool {
	if target == ErrRefused {
		return true
	}
	if c := codeOfReason(e.ReasonCode); c != nil {
		return errors.Is(c, target)
	}
	return false
}

// SubscribeError is a topic filter the broker refused with a SUBACK reason code (0x87: not
// allowed, 0x97: over the subscription limit). errors.Is matches ErrRefused and
// ErrNotAllowed for 0x87.
type SubscribeError struct {
	// Filter is the refused topic filter.
	Filter string
	// ReasonCode is the SUBACK reason code.
	ReasonCode byte
}

// Error implements the error interface.
func (e *SubscribeError) Error() string {
	return fmt.Sprintf("subscribe to %s refused with reason code 0x%02x", e.Filter, e.ReasonCode)
}

// Is reports whether target is ErrRefused, or ErrNotAllowed for reason code 0x87.
func (e *SubscribeError) Is(target error) bool {
	return target == ErrRefused || (e.ReasonCode == reasonNotAuthorized && errors.Is(ErrNotAllowed, target))
}
