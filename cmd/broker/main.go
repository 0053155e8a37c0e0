// Command broker runs the roomq MQTT broker. Run it with -h for its flags; config.example.yaml
// at the repository root documents every setting. `broker passwd` manages the users file of
// auth.mode static.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/store"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == passwdCommand {
		os.Exit(passwdMain(os.Args[2:]))
	}
	cfg, err := loadConfig(os.Args[1:], os.Environ())
	switch {
	case errors.Is(err, pflag.ErrHelp):
		printUsage(os.Stdout)
		return
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "broker: %v\n\n", err)
		printUsage(os.Stderr)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err) // errors of package broker name it already
		os.Exit(1)
	}
}

// run serves with cfg until SIGINT or SIGTERM, then shuts down within cfg.ShutdownGrace.
func run(cfg config) error {
	opts, err := cfg.brokerOptions(nil) // checks every value, log settings included
	if err != nil {
		return err
	}
	opts.Logger, err = newLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
	if err != nil {
		return err
	}
	log := opts.Logger
	log.Info("configuration loaded", logKeyFile, cfg.file, logKeyEnv, cfg.envVars, logKeyAuthMode, cfg.Auth.Mode, logKeyStore, cfg.Store.Type)

	if cfg.Store.Type == storeRedis {
		redis.SetLogger(store.RedisLog{Logger: log}) // go-redis logs process-wide
	}
	if opts.Store, err = cfg.Store.open(); err != nil {
		return err
	}
	if opts.Store == nil && len(cfg.Bridges) > 0 {
		opts.Store = store.NewMemory() // the bridges follow its feed
	}
	b, err := broker.New(opts)
	if err != nil {
		if opts.Store != nil {
			_ = opts.Store.Close()
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := b.Start(ctx); err != nil {
		return errors.Join(err, shutdown(b, cfg))
	}
	if opts.TLS != nil {
		log.Info("TLS on", logKeyMQTTTLS, b.MQTTTLSAddr(), logKeyHTTPS, opts.HTTPTLS, logKeyTLSMin, cfg.TLS.MinVersion)
	}
	var ps problems // checked by brokerOptions already
	_, stopBridges, err := startBridges(cfg.bridges(&ps), b, opts.Store, log)
	if err != nil {
		return errors.Join(err, shutdown(b, cfg))
	}
	<-ctx.Done()
	stop() // a second signal kills at once
	log.Info("shutting down", logKeyGrace, cfg.ShutdownGrace)
	stopBridges()
	return shutdown(b, cfg)
}

func shutdown(b *broker.Broker, cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	return b.Shutdown(ctx)
}
