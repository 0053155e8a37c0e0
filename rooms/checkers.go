package rooms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"unicode/utf8"
)

// Names of the built-in checkers.
const (
	CheckerText   = "text"
	CheckerJSON   = "json"
	CheckerBinary = "binary"
)

// Checker validates the payload of a room message before it is stored.
type Checker interface {
	// Check returns the content to store: for a JSON checker a compact JSON object without the
	// keys id, author and timestamp (binary false); for a binary checker the bytes (binary
	// true). A refusal returns an error that wraps ErrBadMessage and says why.
	Check(payload []byte) (content []byte, binary bool, err error)
}

// CheckerFunc adapts a function to the Checker interface.
type CheckerFunc func(payload []byte) ([]byte, bool, error)

// Check calls f.
func (f CheckerFunc) Check(payload []byte) ([]byte, bool, error) { return f(payload) }

// Checkers is a registry of message checkers by name. The zero value is not usable; build one
// with NewCheckers, which registers text, json and binary.
type Checkers struct {
	mu       sync.RWMutex
	checkers map[string]Checker
}

// NewCheckers returns a registry with the built-in checkers text, json and binary.
func NewCheckers() *Checkers {
	return &Checkers{checkers: map[string]Checker{
		CheckerText:   CheckerFunc(checkText),
		CheckerJSON:   CheckerFunc(checkJSON),
		CheckerBinary: CheckerFunc(checkBinary),
	}}
}

// Register adds a custom checker under name, replacing none: registering a name twice is an
// error, so a custom checker cannot silently shadow a built-in one.
func (c *Checkers) Register(name string, ch Checker) error {
	if f, ok := ch.(CheckerFunc); name == "" || ch == nil || (ok && f == nil) {
		return fmt.Errorf("register checker %q: name and checker are required", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.checkers[name]; ok {
		return fmt.Errorf("register checker %q: already registered", name)
	}
	c.checkers[name] = ch
	return nil
}

// Get returns the checker registered under name.
func (c *Checkers) Get(name string) (Checker, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch, ok := c.checkers[name]
	return ch, ok
}

// Names returns the registered checker names, sorted.
func (c *Checkers) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.checkers))
	for n := range c.checkers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// reservedKeys are added by the broker and may not be sent by clients.
var reservedKeys = []string{"id", "author", "timestamp"}

// CheckText accepts exactly the JSON object {"textMessage": string}.
func CheckText(payload []byte) ([]byte, error) {
	content, _, err := checkText(payload)
	return content, err
}

func checkText(payload []byte) ([]byte, bool, error) {
	obj, err := decodeObject(payload)
	if err != nil {
		return nil, false, err
	}
	raw, ok := obj["textMessage"]
	if !ok || len(obj) != 1 {
		return nil, false, fmt.Errorf("%w: want exactly the key textMessage", ErrBadMessage)
	}
	var text string
	if bytes.Equal(raw, []byte("null")) || json.Unmarshal(raw, &text) != nil {
		return nil, false, fmt.Errorf("%w: textMessage must be a string", ErrBadMessage)
	}
	out, err := json.Marshal(struct {
		TextMessage string `json:"textMessage"`
	}{text})
	if err != nil {
		return nil, false, fmt.Errorf("encode text message: %w", err)
	}
	return out, false, nil
}

func checkJSON(payload []byte) ([]byte, bool, error) {
	obj, err := decodeObject(payload)
	if err != nil {
		return nil, false, err
	}
	for _, k := range reservedKeys {
		if _, ok := obj[k]; ok {
			return nil, false, fmt.Errorf("%w: key %q is reserved", ErrBadMessage, k)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, payload); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	return buf.Bytes(), false, nil
}

func checkBinary(payload []byte) ([]byte, bool, error) {
	return bytes.Clone(payload), true, nil
}

// decodeObject parses payload as one JSON object with unique keys.
func decodeObject(payload []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(payload) {
		return nil, fmt.Errorf("%w: payload is not UTF-8", ErrBadMessage)
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: payload must be a JSON object", ErrBadMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", ErrBadMessage, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadMessage)
	}
	if err := checkUniqueKeys(trimmed, len(obj)); err != nil {
		return nil, err
	}
	return obj, nil
}

// checkUniqueKeys refuses objects with a repeated top-level key, which json.Unmarshal would
// silently collapse (a way to smuggle a reserved key past a naive check).
func checkUniqueKeys(obj []byte, distinct int) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil { // key
			return fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		n++
	}
	if n != distinct {
		return fmt.Errorf("%w: repeated key in JSON object", ErrBadMessage)
	}
	return nil
}
