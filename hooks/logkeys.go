package hooks

// Log keys used by the hooks.
const (
	logKeyClient  = "client"
	logKeyRemote  = "remote"
	logKeyUser    = "user"
	logKeyTopic   = "topic"
	logKeyReason  = "reason"
	logKeyError   = "error"
	logKeyCommand = "command"
	logKeyRoom    = "room"
)
