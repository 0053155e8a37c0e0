package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/internal/mqtttest"
)

// tourStep is one "$ command" line of a console block of the README, with the output the
// README shows for it (for a background command, the output shows at the next "$ wait").
type tourStep struct {
	block   int
	command string
	want    []string
}

// readTour returns the console blocks of README.md as steps.
func readTour(t *testing.T) []tourStep {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var steps []tourStep
	inBlock, block := false, 0
	for _, line := range strings.Split(string(readme), "\n") {
		switch {
		case line == "```console":
			inBlock = true
			block++
		case inBlock && line == "```":
			inBlock = false
		case inBlock && strings.HasPrefix(line, "$ "):
			steps = append(steps, tourStep{block: block, command: strings.TrimPrefix(line, "$ ")})
		case inBlock:
			if len(steps) == 0 {
				t.Fatalf("README console block %d has output before any command", block)
			}
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
		}
	}
	return steps
}

// normalise hides what changes from run to run: timestamps and epochs.
var (
	reTimestamp = regexp.MustCompile(`("timestamp":|timestamp:)\d+`)
	reEpoch     = regexp.MustCompile(`("epoch":"|epoch:)[0-9a-f]+`)
)

func normalise(lines []string) string {
	s := strings.TrimRight(strings.Join(lines, "\n"), "\n")
	s = reTimestamp.ReplaceAllString(s, "${1}T")
	return reEpoch.ReplaceAllString(s, "${1}E")
}

var reClientID = regexp.MustCompile(`-i (\S+)`)

// The tour of the README prints what the README says, run with the real Mosquitto clients
// against a broker on free ports.
func TestReadmeTour(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub", "mosquitto_rr"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing; scripts/test installs mosquitto-clients", tool)
			}
			t.Skipf("%s is missing (apt-get install mosquitto-clients)", tool)
		}
	}
	b := mqtttest.StartBroker(t, nil)
	host, port, err := net.SplitHostPort(b.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("-h %s -p %s", host, port)

	type background struct {
		cmd *exec.Cmd
		out *bytes.Buffer
	}
	var bg []background
	defer func() {
		for _, p := range bg {
			_ = p.cmd.Process.Kill()
		}
	}()
	steps := readTour(t)
	if len(steps) < 5 {
		t.Fatalf("found %d tour steps in README.md", len(steps))
	}
	for _, step := range steps {
		line := strings.ReplaceAll(step.command, "-h localhost", local)
		var got string
		switch {
		case line == "wait":
			var outs []string
			for _, p := range bg {
				done := make(chan error, 1)
				go func() { done <- p.cmd.Wait() }()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("background command %q: %v", p.cmd.Args, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("background command %q did not end", p.cmd.Args)
				}
				outs = append(outs, strings.TrimRight(p.out.String(), "\n"))
			}
			bg = nil
			got = strings.Join(outs, "\n")
		case strings.HasSuffix(line, " &"):
			line = strings.TrimSuffix(line, " &")
			out := new(bytes.Buffer)
			cmd := exec.Command("bash", "-c", line)
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			bg = append(bg, background{cmd, out})
			m := reClientID.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("background command %q needs -i CLIENTID so the test can wait for it", step.command)
			}
			wantSubs := strings.Count(line, " -t ")
			mqtttest.WaitFor(t, 10*time.Second, "background subscriber "+m[1], func() bool {
				subs, ok := b.Subscriptions(m[1])
				return ok && len(subs) == wantSubs
			})
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, _ := exec.CommandContext(ctx, "bash", "-c", line).CombinedOutput()
			cancel()
			got = string(out)
		}
		if normalise([]string{got}) != normalise(step.want) {
			t.Errorf("README block %d: $ %s\n got:\n%s\nwant:\n%s", step.block, step.command, got, strings.Join(step.want, "\n"))
		}
	}
}
