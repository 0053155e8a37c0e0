package adminapi

import (
	"net/http"

	"github.com/roomq/roomq/wire"
)

// Codes of errors that only the HTTP API gives, beside the wire codes of docs/protocol.md.
const (
	// CodeUnauthorized answers a request without the admin token, or with a wrong one (401).
	CodeUnauthorized wire.Code = "unauthorized"
	// CodeNotFound answers a path that is no endpoint (404).
	CodeNotFound wire.Code = "notFound"
	// CodeTooLarge answers a body over the size limit (413).
	CodeTooLarge wire.Code = "tooLarge"
)

// statusOf maps a wire error code to the HTTP status of the response.
func statusOf(code wire.Code) int {
	switch code {
	case wire.CodeBadArgument, wire.CodeBadMessage, wire.CodeInvalidName, wire.CodeNoCommand,
		wire.CodeNoList, wire.CodeListLimitExceeded:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case wire.CodeNotAllowed, wire.CodeNotJoined:
		return http.StatusForbidden
	case wire.CodeNoRoom, wire.CodeNoUser, wire.CodeNoUserOnline, CodeNotFound:
		return http.StatusNotFound
	case wire.CodeRoomExists:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	case wire.CodeStoreUnavailable, wire.CodeTimeout:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
