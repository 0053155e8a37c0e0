// Package redistest starts real Redis servers for tests: a single server, or a Redis Cluster
// of three masters, each a redis-server process on free loopback ports with its files in a
// temporary directory, stopped when the test ends.
//
// When redis-server is not installed, the helpers skip the test, or fail it when the
// environment variable CI is set (scripts/test installs redis-server).
package redistest
