package main

import (
	"context"
	"errors"
	"log/slog"
)

func runResume(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	return Result{}, errors.New("not implemented yet")
}
