package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/roomq/roomq/wire"
)

// decodeArgs decodes the JSON object args into v. A syntax error, a non-object or a value of
// the wrong type gives badArgument naming the field.
func decodeArgs(args json.RawMessage, v any) error {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("{}")
	}
	if trimmed[0] != '{' {
		return wire.NewError(wire.CodeBadArgument, "arguments must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return wire.Errorf(wire.CodeBadArgument, "argument %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return wire.Errorf(wire.CodeBadArgument, "arguments: invalid JSON: %v", err)
	}
	return nil
}

// requireName checks a required name argument.
func requireName(field, value string) error {
	if value == "" {
		return wire.Errorf(wire.CodeBadArgument, "argument %q is required", field)
	}
	if !wire.ValidName(value) {
		return wire.Errorf(wire.CodeInvalidName, "argument %q: invalid name %q", field, value)
	}
	return nil
}

// requireValue checks that a required argument is present.
func requireValue(field string, raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return wire.Errorf(wire.CodeBadArgument, "argument %q is required", field)
	}
	return nil
}

func badArgument(field, format string, args ...any) error {
	return wire.Errorf(wire.CodeBadArgument, "argument %q: %s", field, fmt.Sprintf(format, args...))
}
