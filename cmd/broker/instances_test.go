package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/redistest"
	"github.com/roomq/roomq/wire"
)

// childEnv makes the test binary run the broker's main instead of the tests, so that a test
// can start brokers as processes of their own and kill them.
const childEnv = "ROOMQ_TEST_RUN_BROKER"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is a broker running in a process of its own.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	mqtt string // tcp://host:port
	done chan struct{}

	mu  sync.Mutex
	log []string
}

// startProcess starts a broker process on free loopback ports with the given environment
// (ROOMQ_ variables) and waits until it serves. It is stopped when the test ends.
func startProcess(t *testing.T, env ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	for _, kv := range os.Environ() { // only this test's configuration
		if !strings.HasPrefix(kv, envPrefix) || strings.HasPrefix(kv, envTestPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, cmd: cmd, done: make(chan struct{})}
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log = append(p.log, line)
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				MQTT string `json:"mqtt"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "broker started" {
				started <- rec.MQTT
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("broker process %d log:\n%s", cmd.Process.Pid, strings.Join(p.log, "\n"))
			p.mu.Unlock()
		}
	})
	select {
	case addr := <-started:
		p.mqtt = "tcp://" + addr
	case <-p.done:
		t.Fatalf("broker process ended before serving:\n%s", strings.Join(p.log, "\n"))
	case <-time.After(30 * time.Second):
		t.Fatal("broker process did not start within 30s")
	}
	return p
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func redisEnv(addr string, failureTimeout time.Duration) []string {
	return []string{
		"ROOMQ_STORE__TYPE=redis",
		"ROOMQ_STORE__REDIS__URLS=redis://" + addr,
		"ROOMQ_STORE__REDIS__PREFIX=kill",
		"ROOMQ_FAILURE_TIMEOUT=" + failureTimeout.String(),
	}
}

// withWill dials user on url with a will on devices/{clientID}/status, joined to general.
func withWill(t *testing.T, url, user, clientID string) *mqtttest.Client {
	c := mqtttest.Dial(t, user, mqtttest.Options{URL: url, ClientID: clientID, Connect: func(cp *paho.Connect) {
		cp.WillMessage = &paho.WillMessage{Topic: "devices/" + clientID + "/status", Payload: []byte("gone"), QoS: 1}
	}})
	c.MustSubscribe("rooms/general")
	return c
}

func watch(t *testing.T, url, user string) *mqtttest.Client {
	w := mqtttest.Dial(t, user, mqtttest.Options{URL: url})
	w.MustSubscribe("devices/+/status", "presence/+", "rooms/general/events")
	return w
}

// expectPresence waits for the presence of user with the given count of connections.
func expectPresence(t *testing.T, c *mqtttest.Client, user string, connections int) {
	t.Helper()
	for {
		var p wire.Presence
		if err := json.Unmarshal(c.Expect("presence/+").Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.User == user && p.Connections == connections && p.Online == (connections > 0) {
			return
		}
	}
}

// kill -9 of one of three broker processes on one Redis: within the failure timeout the two
// survivors publish the will of its client, the user's presence and userLeft, each once.
func TestKillInstance(t *testing.T) {
	const failureTimeout = 3 * time.Second
	env := redisEnv(redistest.Standalone(t), failureTimeout)
	victim, b, c := startProcess(t, env...), startProcess(t, env...), startProcess(t, env...)
	watchers := []*mqtttest.Client{watch(t, b.mqtt, "wes"), watch(t, c.mqtt, "wil")}
	withWill(t, victim.mqtt, "dora", "dora-sensor")
	for _, w := range watchers {
		expectPresence(t, w, "dora", 1)
		if ev := w.ExpectEvent("rooms/general/events", "userJoined"); ev["user"] != "dora" {
			t.Fatalf("userJoined = %v", ev)
		}
	}

	victim.kill()
	killed := time.Now()
	for _, w := range watchers {
		if p := w.Expect("devices/+/status"); p.Topic != "devices/dora-sensor/status" || string(p.Payload) != "gone" {
			t.Fatalf("%s got %s %q, want the will", w.ID, p.Topic, p.Payload)
		}
		t.Logf("%s got the will %v after kill -9 (failure timeout %v)", w.ID, time.Since(killed).Round(time.Millisecond), failureTimeout)
		expectPresence(t, w, "dora", 0)
		if ev := w.ExpectEvent("rooms/general/events", "userLeft"); ev["user"] != "dora" {
			t.Fatalf("userLeft = %v", ev)
		}
	}
	// Once: the survivors do not both clean up (one more failure timeout shows nothing).
	for _, w := range watchers {
		w.ExpectNone("devices/+/status", failureTimeout)
	}
}

// A broker restarted with the same instance id after kill -9 cleans up what its earlier run
// left at once, long before the failure timeout.
func TestRestartCleansOwnState(t *testing.T) {
	env := append(redisEnv(redistest.Standalone(t), time.Hour), "ROOMQ_INSTANCE_ID=edge-1")
	first := startProcess(t, env...)
	other := startProcess(t, redisEnv(strings.TrimPrefix(env[1], "ROOMQ_STORE__REDIS__URLS=redis://"), time.Hour)...)
	w := watch(t, other.mqtt, "wes")
	withWill(t, first.mqtt, "dora", "dora-sensor")
	expectPresence(t, w, "dora", 1)
	first.kill()
	startProcess(t, env...)
	if p := w.Expect("devices/+/status"); string(p.Payload) != "gone" {
		t.Fatalf("got %s %q, want the will", p.Topic, p.Payload)
	}
	expectPresence(t, w, "dora", 0)
	if ev := w.ExpectEvent("rooms/general/events", "userLeft"); ev["user"] != "dora" {
		t.Fatalf("userLeft = %v", ev)
	}
}
