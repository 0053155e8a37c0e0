package main

import (
	"context"
	"fmt"
	"time"

	"github.com/roomq/roomq/store"
)

// The values of store.type.
const (
	storeMemory = "memory"
	storeRedis  = "redis"
)

// storeConfig chooses where the broker keeps its shared state.
type storeConfig struct {
	// Type is memory (one process) or redis (any number of instances).
	Type  string           `koanf:"type"`
	Redis redisStoreConfig `koanf:"redis"`
}

// redisStoreConfig locates Redis: one URL for a single server, several for a Cluster.
type redisStoreConfig struct {
	URLs           []string      `koanf:"urls"`
	Prefix         string        `koanf:"prefix"`
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
}

func defaultStoreConfig() storeConfig {
	return storeConfig{Type: storeMemory, Redis: redisStoreConfig{URLs: []string{}, Prefix: "roomq", ConnectTimeout: 10 * time.Second}}
}

// check validates the store settings.
func (c storeConfig) check(ps *problems) {
	switch c.Type {
	case storeMemory:
	case storeRedis:
		if len(c.Redis.URLs) == 0 {
			ps.addf("store.redis.urls", "store.type redis needs at least one redis:// URL")
		}
		if c.Redis.Prefix == "" {
			ps.addf("store.redis.prefix", "must not be empty")
		}
		if c.Redis.ConnectTimeout <= 0 {
			ps.addf("store.redis.connect_timeout", "must be positive")
		}
	default:
		ps.addf("store.type", "%q is not one of memory, redis", c.Type)
	}
}

// open builds the configured store: nil for memory (the broker makes its own), or a Redis
// store, which it waits for up to connect_timeout.
func (c storeConfig) open() (store.Store, error) {
	if c.Type != storeRedis {
		return nil, nil
	}
	client, err := store.NewRedisClient(c.Redis.URLs)
	if err != nil {
		return nil, fmt.Errorf("store.redis.urls: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Redis.ConnectTimeout)
	defer cancel()
	st, err := store.NewRedis(ctx, store.RedisOptions{Client: client, Prefix: c.Redis.Prefix})
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	return st, nil
}
