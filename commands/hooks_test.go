package commands

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/roomq/roomq/wire"
)

// The hook runner: order, early ends, After hooks on failure, panics and plain errors.
func TestHooksRun(t *testing.T) {
	ctx := context.Background()
	var trace []string
	h := NewHooks()
	h.Before("cmd", func(_ context.Context, c *Call) (any, error) {
		trace = append(trace, "b1")
		return nil, c.SetArgs(map[string]int{"n": 2})
	})
	h.Before(AllCommands, func(context.Context, *Call) (any, error) {
		trace = append(trace, "all")
		return nil, nil
	})
	h.After(AllCommands, func(_ context.Context, _ *Call, out *Outcome) error {
		trace = append(trace, "afterAll")
		return nil
	})
	h.After("cmd", func(_ context.Context, _ *Call, out *Outcome) error {
		trace = append(trace, "a1")
		return out.Merge(map[string]any{"extra": true})
	})
	exec := func(_ context.Context, c *Call) (any, error) {
		trace = append(trace, "exec")
		var a struct{ N int }
		if err := c.Decode(&a); err != nil {
			return nil, err
		}
		return map[string]int{"n": a.N}, nil
	}
	out := h.run(ctx, &Call{Command: "cmd", Args: json.RawMessage(`{"n":1}`)}, exec)
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	got, _ := json.Marshal(out.Result)
	if string(got) != `{"extra":true,"n":2}` {
		t.Errorf("result %s", got)
	}
	if want := "all b1 exec a1 afterAll"; strings.Join(trace, " ") != want {
		t.Errorf("trace %q, want %q", strings.Join(trace, " "), want)
	}

	// Ending early.
	h2 := NewHooks()
	h2.Before("cmd", func(context.Context, *Call) (any, error) { return "cached", nil })
	h2.Before("cmd", func(context.Context, *Call) (any, error) { t.Error("second Before hook ran"); return nil, nil })
	out = h2.run(ctx, &Call{Command: "cmd"}, func(context.Context, *Call) (any, error) {
		t.Error("command ran")
		return nil, nil
	})
	if out.Result != "cached" || !out.Skipped {
		t.Errorf("outcome %+v", out)
	}

	// Failures.
	for name, f := range map[string]BeforeHook{
		"panic": func(context.Context, *Call) (any, error) { panic("boom") },
		"error": func(context.Context, *Call) (any, error) { return nil, errors.New("db down") },
	} {
		h3 := NewHooks()
		h3.Before("cmd", f)
		var saw error
		h3.After("cmd", func(_ context.Context, _ *Call, out *Outcome) error { saw = out.Err; return nil })
		out := h3.run(ctx, &Call{Command: "cmd"}, exec)
		if wire.CodeOf(out.Err) != wire.CodeInternalError || saw == nil {
			t.Errorf("%s: outcome %+v, After saw %v", name, out, saw)
		}
	}
	h4 := NewHooks()
	h4.After("cmd", func(context.Context, *Call, *Outcome) error { return wire.NewError(wire.CodeRateLimited, "slow down") })
	if out := h4.run(ctx, &Call{Command: "cmd", Args: json.RawMessage(`{}`)}, exec); wire.CodeOf(out.Err) != wire.CodeRateLimited || out.Result != nil {
		t.Errorf("After hook error: %+v", out)
	}

	// A nil *Hooks has none.
	var none *Hooks
	if none.active("cmd") || none.Connect(ctx, &Connection{}) != nil {
		t.Error("nil Hooks is not empty")
	}
}
