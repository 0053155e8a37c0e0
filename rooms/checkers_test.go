package rooms_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/wire"
)

func builtinChecker(t testing.TB, name string) rooms.Checker {
	t.Helper()
	ch, ok := rooms.NewCheckers().Get(name)
	if !ok {
		t.Fatalf("built-in checker %q is not registered", name)
	}
	return ch
}

// assertRefused checks the contract of a refusal: an error wrapping ErrBadMessage, no content.
func assertRefused(t testing.TB, name string, payload []byte, content []byte, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s checker accepted %q as %q, want a refusal", name, payload, content)
	}
	if !errors.Is(err, rooms.ErrBadMessage) {
		t.Errorf("%s checker refused %q with %v, which does not wrap ErrBadMessage", name, payload, err)
	}
	if c := wire.CodeOf(err); c != wire.CodeBadMessage {
		t.Errorf("CodeOf(%v) = %q, want %q", err, c, wire.CodeBadMessage)
	}
	if content != nil {
		t.Errorf("%s checker returned content %q with its refusal", name, content)
	}
}

// assertCompact fails unless b is compact JSON.
func assertCompactJSON(t testing.TB, b []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("output %q is not JSON: %v", b, err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Errorf("output %q is not compact (compact: %q)", b, buf.Bytes())
	}
}

// topLevelKeys returns the keys of the JSON object b in order, repeated keys included.
func jsonObjectKeys(t testing.TB, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%q is not a JSON object (%v, %v)", b, tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("%q: trailing data", b)
	}
	return keys
}

// textCases are payloads the text checker accepts, with the text they carry and, where the
// exact bytes matter, the content it must store.
var textAccepted = []struct {
	name    string
	payload string
	text    string
	want    string
}{
	{"plain", `{"textMessage":"hello"}`, "hello", `{"textMessage":"hello"}`},
	{"empty text", `{"textMessage":""}`, "", `{"textMessage":""}`},
	{"whitespace around", " \r\n\t{ \"textMessage\" :\t\"hi\" }\n ", "hi", `{"textMessage":"hi"}`},
	{"unicode", `{"textMessage":"héllo 世界 🎉"}`, "héllo 世界 🎉", `{"textMessage":"héllo 世界 🎉"}`},
	{"escapes", `{"textMessage":"a\"b\\c\/d\n\t\u00e9\ud83c\udf89"}`, "a\"b\\c/d\n\té🎉", `{"textMessage":"a\"b\\c/d\n\té🎉"}`},
	{"escaped key", `{"text\u004dessage":"x"}`, "x", `{"textMessage":"x"}`},
	{"html", `{"textMessage":"<b>&amp;</b>"}`, "<b>&amp;</b>", ""},
	{"control escapes", `{"textMessage":"\u0000\u001f"}`, "\x00\x1f", ""},
	{"line separator", `{"textMessage":"a\u2028b"}`, "a\u2028b", ""},
	{"json inside", `{"textMessage":"{\"id\":1}"}`, `{"id":1}`, `{"textMessage":"{\"id\":1}"}`},
	{"long", `{"textMessage":"` + strings.Repeat("x", 100000) + `"}`, strings.Repeat("x", 100000), ""},
}

// textRefused are payloads the text checker refuses.
var textRefused = []struct{ name, payload string }{
	{"empty payload", ""},
	{"whitespace only", " \n\t"},
	{"empty object", `{}`},
	{"other key", `{"text":"x"}`},
	{"key case", `{"TextMessage":"x"}`},
	{"extra key", `{"textMessage":"x","other":1}`},
	{"extra key first", `{"other":1,"textMessage":"x"}`},
	{"extra reserved key", `{"textMessage":"x","id":1}`},
	{"duplicate key", `{"textMessage":"a","textMessage":"b"}`},
	{"duplicate key via escape", `{"textMessage":"a","text\u004dessage":"b"}`},
	{"number", `{"textMessage":1}`},
	{"bool", `{"textMessage":true}`},
	{"object", `{"textMessage":{"a":"b"}}`},
	{"array value", `{"textMessage":["x"]}`},
	{"top-level array", `[{"textMessage":"x"}]`},
	{"empty array", `[]`},
	{"top-level string", `"x"`},
	{"top-level null", `null`},
	{"top-level number", `1`},
	{"trailing text", `{"textMessage":"x"}x`},
	{"trailing object", `{"textMessage":"x"}{}`},
	{"trailing object after space", `{"textMessage":"x"} {"textMessage":"y"}`},
	{"trailing string", `{"textMessage":"x"} "y"`},
	{"trailing NUL", "{\"textMessage\":\"x\"}\x00"},
	{"truncated", `{"textMessage":"x"`},
	{"unterminated string", `{"textMessage":"x}`},
	{"single quotes", `{'textMessage':'x'}`},
	{"trailing comma", `{"textMessage":"x",}`},
	{"bad escape", `{"textMessage":"\x"}`},
	{"raw newline in string", "{\"textMessage\":\"a\nb\"}"},
	{"invalid UTF-8 in text", "{\"textMessage\":\"\xff\"}"},
	{"invalid UTF-8 in key", "{\"textMessage\xff\":\"x\"}"},
	{"invalid UTF-8 after object", "{\"textMessage\":\"x\"}\xff"},
	{"UTF-16 payload", "\xff\xfe{\x00}\x00"},
	{"BOM", "\ufeff{\"textMessage\":\"x\"}"},
}

func TestTextChecker(t *testing.T) {
	ch := builtinChecker(t, rooms.CheckerText)
	for _, tc := range textAccepted {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			out, binary, err := ch.Check([]byte(tc.payload))
			if err != nil {
				t.Fatalf("Check(%q) = %v", tc.payload, err)
			}
			if binary {
				t.Errorf("Check(%q) says binary", tc.payload)
			}
			if tc.want != "" && string(out) != tc.want {
				t.Errorf("Check(%q) = %q, want %q", tc.payload, out, tc.want)
			}
			assertCompactJSON(t, out)
			if keys := jsonObjectKeys(t, out); !slices.Equal(keys, []string{"textMessage"}) {
				t.Errorf("output keys %q, want exactly textMessage", keys)
			}
			var got struct{ TextMessage *string }
			if err := json.Unmarshal(out, &got); err != nil || got.TextMessage == nil {
				t.Fatalf("output %q does not decode: %v", out, err)
			}
			if *got.TextMessage != tc.text {
				t.Errorf("output text %q, want %q", *got.TextMessage, tc.text)
			}
			// The exported helper agrees with the registered checker.
			if direct, err := rooms.CheckText([]byte(tc.payload)); err != nil || !bytes.Equal(direct, out) {
				t.Errorf("CheckText(%q) = %q, %v; checker gave %q", tc.payload, direct, err, out)
			}
		})
	}
	for _, tc := range textRefused {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			out, _, err := ch.Check([]byte(tc.payload))
			assertRefused(t, "text", []byte(tc.payload), out, err)
			if _, err := rooms.CheckText([]byte(tc.payload)); !errors.Is(err, rooms.ErrBadMessage) {
				t.Errorf("CheckText(%q) = %v, want ErrBadMessage", tc.payload, err)
			}
		})
	}
}

// TestTextCheckerRefusesNullText: docs/protocol.md says the text checker accepts exactly
// {"textMessage": string}; null is not a string.
func TestTextCheckerRefusesNullText(t *testing.T) {
	ch := builtinChecker(t, rooms.CheckerText)
	for _, p := range []string{`{"textMessage":null}`, ` { "textMessage" : null } `} {
		out, _, err := ch.Check([]byte(p))
		assertRefused(t, "text", []byte(p), out, err)
	}
}

// TestTextCheckerRefusesTrailingCloser: a payload that is not one JSON object is refused, also
// when what follows the object starts with '}' or ']'.
func TestTextCheckerRefusesTrailingCloser(t *testing.T) {
	ch := builtinChecker(t, rooms.CheckerText)
	for _, p := range []string{
		`{"textMessage":"x"}}`,
		`{"textMessage":"x"}]`,
		`{"textMessage":"x"} ]`,
		`{"textMessage":"x"}}}}`,
		`{"textMessage":"x"}]garbage{`,
		`{"textMessage":"x"}} {"textMessage":"y"}`,
	} {
		out, _, err := ch.Check([]byte(p))
		assertRefused(t, "text", []byte(p), out, err)
	}
}

var jsonAccepted = []struct{ name, payload, want string }{
	{"empty object", `{}`, `{}`},
	{"empty object with spaces", " { \n } ", `{}`},
	{"one key", `{"a":1}`, `{"a":1}`},
	{"text message", `{"textMessage":"x"}`, `{"textMessage":"x"}`},
	{"compacts", " {\n  \"a\" : [ 1 , 2 ] ,\n  \"b\" : { \"c\" : null }\n}\n", `{"a":[1,2],"b":{"c":null}}`},
	{"nested reserved keys are fine", `{"a":{"id":1,"author":"x","timestamp":2},"b":[{"id":3}]}`, `{"a":{"id":1,"author":"x","timestamp":2},"b":[{"id":3}]}`},
	{"reserved names as values", `{"k":"id","author_":"timestamp"}`, `{"k":"id","author_":"timestamp"}`},
	{"reserved keys differ in case", `{"ID":1,"Author":"x","TimeStamp":2}`, `{"ID":1,"Author":"x","TimeStamp":2}`},
	{"keys are kept in order", `{"z":1,"a":2,"m":3}`, `{"z":1,"a":2,"m":3}`},
	{"numbers are kept as written", `{"n":1.50e+10,"m":-0,"big":123456789012345678901234567890}`, `{"n":1.50e+10,"m":-0,"big":123456789012345678901234567890}`},
	{"strings are kept as written", `{"s":"a\u00e9\/ b\n","t":"<&>"}`, `{"s":"a\u00e9\/ b\n","t":"<&>"}`},
	{"unicode", `{"名前":"世界 🎉"}`, `{"名前":"世界 🎉"}`},
	{"all JSON types", `{"s":"","n":0,"t":true,"f":false,"z":null,"a":[],"o":{}}`, `{"s":"","n":0,"t":true,"f":false,"z":null,"a":[],"o":{}}`},
	{"duplicate nested keys are not top-level", `{"a":{"b":1,"b":2}}`, `{"a":{"b":1,"b":2}}`},
	{"empty key", `{"":1}`, `{"":1}`},
}

var jsonRefused = []struct{ name, payload string }{
	{"id", `{"id":1}`},
	{"author", `{"author":"mallory"}`},
	{"timestamp", `{"timestamp":0}`},
	{"id among others", `{"a":1,"id":2,"b":3}`},
	{"null id", `{"id":null}`},
	{"escaped id key", `{"\u0069d":1}`},
	{"escaped author key", `{"auth\u006fr":"x"}`},
	{"duplicate id", `{"id":1,"id":2}`},
	{"duplicate author", `{"a":1,"author":"x","author":"y"}`},
	{"duplicate key", `{"a":1,"a":2}`},
	{"duplicate key via escape", `{"a":1,"\u0061":2}`},
	{"empty payload", ""},
	{"whitespace only", "  "},
	{"top-level array", `[{"a":1}]`},
	{"empty array", `[]`},
	{"top-level string", `"x"`},
	{"top-level null", `null`},
	{"top-level number", `42`},
	{"trailing text", `{"a":1}x`},
	{"trailing object", `{"a":1}{"b":2}`},
	{"trailing closer", `{"a":1}}`},
	{"trailing bracket", `{"a":1}]`},
	{"trailing closer after space", `{"a":1} ]`},
	{"truncated", `{"a":1`},
	{"trailing comma", `{"a":1,}`},
	{"invalid UTF-8 in value", "{\"a\":\"\xc3\x28\"}"},
	{"invalid UTF-8 in key", "{\"\xff\":1}"},
	{"NaN", `{"a":NaN}`},
	{"deep nesting", `{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`},
}

func TestJSONChecker(t *testing.T) {
	ch := builtinChecker(t, rooms.CheckerJSON)
	for _, tc := range jsonAccepted {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			out, binary, err := ch.Check([]byte(tc.payload))
			if err != nil {
				t.Fatalf("Check(%q) = %v", tc.payload, err)
			}
			if binary {
				t.Errorf("Check(%q) says binary", tc.payload)
			}
			if string(out) != tc.want {
				t.Errorf("Check(%q) = %q, want %q", tc.payload, out, tc.want)
			}
			assertCompactJSON(t, out)
		})
	}
	for _, tc := range jsonRefused {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			out, _, err := ch.Check([]byte(tc.payload))
			assertRefused(t, "json", []byte(tc.payload), out, err)
		})
	}
}

func TestBinaryChecker(t *testing.T) {
	ch := builtinChecker(t, rooms.CheckerBinary)
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"zero bytes", []byte{0, 0, 0}},
		{"invalid UTF-8", []byte{0xff, 0xfe, 0xc3, 0x28}},
		{"text object", []byte(`{"textMessage":"x"}`)},
		{"reserved keys", []byte(`{"id":1,"author":"x","timestamp":2}`)},
		{"not JSON", []byte("hello }{")},
		{"all bytes", func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := bytes.Clone(tc.payload)
			want := bytes.Clone(tc.payload)
			out, binary, err := ch.Check(in)
			if err != nil {
				t.Fatalf("Check(%q) = %v", tc.payload, err)
			}
			if !binary {
				t.Errorf("Check(%q) is not binary", tc.payload)
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("Check(%q) = %q, want the bytes unchanged", tc.payload, out)
			}
			for i := range in {
				in[i] ^= 0xff // the caller reuses its buffer
			}
			if !bytes.Equal(out, want) {
				t.Errorf("mutating the input changed the stored content to %q", out)
			}
		})
	}
}

func TestCheckersNames(t *testing.T) {
	c := rooms.NewCheckers()
	if got, want := c.Names(), []string{"binary", "json", "text"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	if _, ok := c.Get("nope"); ok {
		t.Error(`Get("nope") found a checker`)
	}
	if _, ok := c.Get("Text"); ok {
		t.Error(`Get("Text") found a checker: names are case-sensitive`)
	}
}

func TestCheckersRegister(t *testing.T) {
	upper := rooms.CheckerFunc(func(p []byte) ([]byte, bool, error) {
		if len(p) == 0 {
			return nil, false, fmt.Errorf("%w: empty", rooms.ErrBadMessage)
		}
		return bytes.ToUpper(p), true, nil
	})

	t.Run("custom checker works", func(t *testing.T) {
		c := rooms.NewCheckers()
		if err := c.Register("upper", upper); err != nil {
			t.Fatalf("Register(upper) = %v", err)
		}
		ch, ok := c.Get("upper")
		if !ok {
			t.Fatal("Get(upper) found nothing after Register")
		}
		out, binary, err := ch.Check([]byte("abc"))
		if err != nil || !binary || string(out) != "ABC" {
			t.Errorf("Check(abc) = %q, %v, %v; want ABC, true, nil", out, binary, err)
		}
		if _, _, err := ch.Check(nil); !errors.Is(err, rooms.ErrBadMessage) {
			t.Errorf("custom refusal = %v, want ErrBadMessage", err)
		}
		if got, want := c.Names(), []string{"binary", "json", "text", "upper"}; !slices.Equal(got, want) {
			t.Errorf("Names() = %q, want %q", got, want)
		}
		if _, ok := rooms.NewCheckers().Get("upper"); ok {
			t.Error("a registration leaked into another registry")
		}
	})

	for _, tc := range []struct {
		name    string
		checker string
		ch      rooms.Checker
	}{
		{"empty name", "", upper},
		{"nil checker", "upper", nil},
		{"empty name and nil checker", "", nil},
		{"built-in text", rooms.CheckerText, upper},
		{"built-in json", rooms.CheckerJSON, upper},
		{"built-in binary", rooms.CheckerBinary, upper},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			c := rooms.NewCheckers()
			if err := c.Register(tc.checker, tc.ch); err == nil {
				t.Fatalf("Register(%q, %v) = nil, want an error", tc.checker, tc.ch)
			}
			if got, want := c.Names(), []string{"binary", "json", "text"}; !slices.Equal(got, want) {
				t.Errorf("Names() = %q after a refused Register", got)
			}
			if ch, ok := c.Get(tc.checker); tc.checker != "upper" && ok {
				if out, _, err := ch.Check([]byte("x")); err == nil && string(out) == "X" {
					t.Errorf("built-in %q was replaced", tc.checker)
				}
			} else if ok {
				t.Errorf("Get(%q) found a checker after a refused Register", tc.checker)
			}
		})
	}

	t.Run("refuses a second registration", func(t *testing.T) {
		c := rooms.NewCheckers()
		if err := c.Register("upper", upper); err != nil {
			t.Fatal(err)
		}
		other := rooms.CheckerFunc(func(p []byte) ([]byte, bool, error) { return p, true, nil })
		if err := c.Register("upper", other); err == nil {
			t.Fatal("second Register(upper) = nil, want an error")
		}
		ch, _ := c.Get("upper")
		if out, _, _ := ch.Check([]byte("abc")); string(out) != "ABC" {
			t.Errorf("the first registration was replaced: Check(abc) = %q", out)
		}
	})
}

func TestCheckersConcurrent(t *testing.T) {
	c := rooms.NewCheckers()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("c%d", i)
			_ = c.Register(name, rooms.CheckerFunc(func(p []byte) ([]byte, bool, error) { return p, true, nil }))
			for range 100 {
				if _, ok := c.Get(rooms.CheckerText); !ok {
					t.Error("text checker vanished")
					return
				}
				_ = c.Names()
			}
		}()
	}
	wg.Wait()
	if n := len(c.Names()); n != 11 {
		t.Errorf("%d checkers after 8 concurrent registrations, want 11", n)
	}
}

// enrichedAuthor is an author that needs escaping in JSON.
const enrichedAuthor = "a\"b<\u2028"

// checkEnriched verifies that the delivered payload of a message with content is content's
// object with id, author and timestamp prepended, and returns its decoded keys.
func checkEnriched(t *testing.T, content []byte) map[string]json.RawMessage {
	t.Helper()
	m := rooms.NewMessage("room", "epoch", "client", store.Message{ID: 7, Author: enrichedAuthor, Timestamp: 1700000000000, Payload: content})
	for _, b := range [][]byte{m.Payload(), m.JSON()} {
		if !json.Valid(b) {
			t.Fatalf("enriched %q is not valid JSON", b)
		}
	}
	keys := jsonObjectKeys(t, m.Payload())
	if len(keys) < 3 || !slices.Equal(keys[:3], []string{"id", "author", "timestamp"}) {
		t.Fatalf("enriched keys %q do not start with id, author, timestamp", keys)
	}
	if want := append([]string{"id", "author", "timestamp"}, jsonObjectKeys(t, content)...); !slices.Equal(keys, want) {
		t.Fatalf("enriched keys %q, want %q", keys, want)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.Payload(), &obj); err != nil {
		t.Fatal(err)
	}
	var author string
	if err := json.Unmarshal(obj["author"], &author); err != nil || author != enrichedAuthor {
		t.Fatalf("enriched author %s, want %q", obj["author"], enrichedAuthor)
	}
	if string(obj["id"]) != "7" || string(obj["timestamp"]) != "1700000000000" {
		t.Fatalf("enriched id %s timestamp %s", obj["id"], obj["timestamp"])
	}
	return obj
}

func FuzzTextChecker(f *testing.F) {
	for _, tc := range textAccepted {
		if len(tc.payload) < 1000 {
			f.Add([]byte(tc.payload))
		}
	}
	for _, tc := range textRefused {
		f.Add([]byte(tc.payload))
	}
	// Known bugs: these seeds skip while the bugs last and guard the fixes afterwards.
	f.Add([]byte(`{"textMessage":null}`))
	f.Add([]byte(`{"textMessage":"x"}]garbage{`))
	ch := builtinChecker(f, rooms.CheckerText)
	f.Fuzz(func(t *testing.T, payload []byte) {
		in := bytes.Clone(payload)
		out, binary, err := ch.Check(in)
		if !bytes.Equal(in, payload) {
			t.Fatalf("Check modified its input")
		}
		if err != nil {
			assertRefused(t, "text", payload, out, err)
			return
		}
		if binary {
			t.Fatalf("Check(%q) says binary", payload)
		}
		assertCompactJSON(t, out)
		if keys := jsonObjectKeys(t, out); !slices.Equal(keys, []string{"textMessage"}) {
			t.Fatalf("Check(%q) = %q: keys %q, want exactly textMessage", payload, out, keys)
		}
		// What was accepted is one JSON object holding exactly one string textMessage.
		if !json.Valid(payload) {
			t.Fatalf("Check accepted %q, which is not one JSON value", payload)
		}
		if keys := jsonObjectKeys(t, payload); len(keys) != 1 {
			t.Fatalf("Check accepted %q with keys %q", payload, keys)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(payload, &raw); err != nil {
			t.Fatal(err)
		}
		if v := raw["textMessage"]; len(v) == 0 || v[0] != '"' {
			t.Fatalf("Check accepted %q whose textMessage is %s, not a string", payload, v)
		}
		var sent, stored struct{ TextMessage string }
		if err := json.Unmarshal(payload, &sent); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &stored); err != nil {
			t.Fatal(err)
		}
		if sent != stored {
			t.Fatalf("Check(%q) changed the text: %q became %q", payload, sent.TextMessage, stored.TextMessage)
		}
		obj := checkEnriched(t, out)
		if len(obj) != 4 {
			t.Fatalf("enriched text message has keys %v", obj)
		}
	})
}

func FuzzJSONChecker(f *testing.F) {
	for _, tc := range jsonAccepted {
		f.Add([]byte(tc.payload))
	}
	for _, tc := range jsonRefused {
		if len(tc.payload) < 1000 {
			f.Add([]byte(tc.payload))
		}
	}
	ch := builtinChecker(f, rooms.CheckerJSON)
	f.Fuzz(func(t *testing.T, payload []byte) {
		in := bytes.Clone(payload)
		out, binary, err := ch.Check(in)
		if !bytes.Equal(in, payload) {
			t.Fatalf("Check modified its input")
		}
		if err != nil {
			assertRefused(t, "json", payload, out, err)
			return
		}
		if binary {
			t.Fatalf("Check(%q) says binary", payload)
		}
		if !json.Valid(payload) {
			t.Fatalf("Check accepted %q, which is not one JSON value", payload)
		}
		assertCompactJSON(t, out)
		keys := jsonObjectKeys(t, out)
		seen := map[string]bool{}
		for _, k := range keys {
			if k == "id" || k == "author" || k == "timestamp" {
				t.Fatalf("Check(%q) = %q keeps reserved key %q", payload, out, k)
			}
			if seen[k] {
				t.Fatalf("Check(%q) = %q repeats key %q", payload, out, k)
			}
			seen[k] = true
		}
		// The content is the object that was sent.
		var sent, stored any
		if err := decodeJSONNumbers(payload, &sent); err != nil {
			t.Fatal(err)
		}
		if err := decodeJSONNumbers(out, &stored); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sent, stored) {
			t.Fatalf("Check(%q) = %q changed the object", payload, out)
		}
		obj := checkEnriched(t, out)
		if len(obj) != len(keys)+3 {
			t.Fatalf("enriched message has %d keys, want %d", len(obj), len(keys)+3)
		}
	})
}

func decodeJSONNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
