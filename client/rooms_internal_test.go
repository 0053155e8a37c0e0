package client

import (
	"encoding/json"
	"testing"
)

// readPrefix reads what the broker writes first, and gives up (for a full decode) on anything
// else; either way historyMessage gets the same fields.
func TestHistoryMessageHead(t *testing.T) {
	for _, raw := range []string{
		`{"id":7,"author":"bob","timestamp":1795448485427,"textMessage":"hi \"there\""}`,
		`{"id":8,"author":"b\u00f6b","timestamp":1795448485428}`,
		`{"author":"bob","id":9,"timestamp":1795448485429,"x":1}`,
		`{ "id": 10, "author": "bob", "timestamp": 1795448485430 }`,
	} {
		m, err := historyMessage("r", json.RawMessage(raw))
		var want historyHead
		if jerr := json.Unmarshal([]byte(raw), &want); jerr != nil {
			t.Fatal(jerr)
		}
		if err != nil || m.ID != want.ID || m.Author != want.Author || m.Timestamp.UnixMilli() != want.Timestamp || string(m.Payload) != raw {
			t.Errorf("historyMessage(%s) = %+v, %v; want %+v", raw, m, err, want)
		}
	}
	var h historyHead
	if !h.readPrefix([]byte(`{"id":7,"author":"bob","timestamp":1795448485427,"x":1}`)) {
		t.Error("readPrefix gave up on the broker's own form")
	}
}
