package wire

import (
	"errors"
	"fmt"
)

// Code is an error code of the wire contract, sent to clients in RPC error objects.
type Code string

// The error codes of docs/protocol.md.
const (
	CodeBadArgument       Code = "badArgument"
	CodeBadMessage        Code = "badMessage"
	CodeInvalidName       Code = "invalidName"
	CodeNoCommand         Code = "noCommand"
	CodeNoRoom            Code = "noRoom"
	CodeRoomExists        Code = "roomExists"
	CodeNotJoined         Code = "notJoined"
	CodeNotAllowed        Code = "notAllowed"
	CodeNoList            Code = "noList"
	CodeListLimitExceeded Code = "listLimitExceeded"
	CodeNoUser            Code = "noUser"
	CodeNoUserOnline      Code = "noUserOnline"
	CodeRateLimited       Code = "rateLimited"
	CodeTimeout           Code = "timeout"
	CodeStoreUnavailable  Code = "storeUnavailable"
	CodeInternalError     Code = "internalError"
)

// Error is an error that carries a wire code and a human readable message. Packages define
// their sentinel errors as *Error values and wrap them with context; CodeOf recovers the code.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// NewError returns an error with the given code and message.
func NewError(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Errorf returns an error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements the error interface.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so that errors.Is matches any
// error of a code regardless of its message.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// CodeOf returns the wire code carried by err, or CodeInternalError when err carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternalError
}

// AsError converts any error into the *Error sent to a client. Errors that carry no code become
// internalError with a generic message, so internal details never reach clients.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternalError, Message: "internal error"}
}
