package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
)

// mochiLogHandler tames Mochi's logs: its listeners log every connection that ends without a
// DISCONNECT (EOF, reset, closed) as a warning with an empty message. Those are ordinary for a
// broker of devices and browsers, so they become debug records with a message.
type mochiLogHandler struct{ slog.Handler }

func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" && r.Level == slog.LevelWarn {
		level := slog.LevelWarn
		r.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && connectionEnded(err) {
				level = slog.LevelDebug
			}
			return true
		})
		nr := slog.NewRecord(r.Time, level, "connection ended", r.PC)
		r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
		if !h.Handler.Enabled(ctx, level) {
			return nil
		}
		return h.Handler.Handle(ctx, nr)
	}
	return h.Handler.Handle(ctx, r)
}

func (h mochiLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return mochiLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name)}
}

// Enabled lets Warn records through to Handle, which may demote them.
func (h mochiLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l == slog.LevelWarn || h.Handler.Enabled(ctx, l)
}

// connectionEnded reports whether err only says that the peer went away.
func connectionEnded(err error) bool {
	var opErr *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &opErr)
}
