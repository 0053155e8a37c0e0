package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/roomq/roomq/acl"
)

// passwd runs the passwd subcommand at the lowest bcrypt cost with password as standard input.
func passwd(t *testing.T, password string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runPasswd(append(args, "--cost", "4"), strings.NewReader(password), &out, nil)
	return out.String(), err
}

// loadUsers reads a users file as the broker does at start.
func loadUsers(t *testing.T, path string) *acl.StaticAuth {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	users, err := acl.ParseStaticUsers(data)
	if err != nil {
		t.Fatal(err)
	}
	a, err := acl.NewStaticAuth(users)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func login(a acl.Authenticator, user, password string) (acl.Identity, error) {
	return a.Authenticate(context.Background(), acl.Credentials{Username: user, Password: []byte(password)})
}

func TestPasswdRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")

	out, err := passwd(t, "s3cret alice\n", "--file", file, "--user", "alice", "--role", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if out != fmt.Sprintf("added user alice in %s\n", file) {
		t.Errorf("output %q", out)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := passwd(t, "bob pw\r\nignored second line\n", "--file", file, "--user", "bob", "--role", "mod,ops", "--role", "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := passwd(t, "no newline", "--file", file, "--user", "carol"); err != nil {
		t.Fatal(err)
	}

	a := loadUsers(t, file)
	for _, tc := range []struct {
		user, pw string
		roles    []string
	}{
		{"alice", "s3cret alice", []string{"admin"}},
		{"bob", "bob pw", []string{"mod", "ops", "dev"}},
		{"carol", "no newline", nil},
	} {
		id, err := login(a, tc.user, tc.pw)
		if err != nil {
			t.Errorf("%s: %v", tc.user, err)
			continue
		}
		if !reflect.DeepEqual(id.Roles, tc.roles) {
			t.Errorf("%s: roles %q, want %q", tc.user, id.Roles, tc.roles)
		}
	}

	// A new password keeps alice's role and her place in the file.
	out, err = passwd(t, "new\n", "--file", file, "--user", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "updated user alice") {
		t.Errorf("output %q", out)
	}
	a = loadUsers(t, file)
	if id, err := login(a, "alice", "new"); err != nil || !id.IsAdmin() {
		t.Errorf("alice after the update: %+v, %v", id, err)
	}
	if _, err := login(a, "alice", "s3cret alice"); err == nil {
		t.Error("the old password still works")
	}
	if _, err := login(a, "bob", "bob pw"); err != nil {
		t.Errorf("bob after alice's update: %v", err)
	}
	data, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(data), usersFileHeader+"users:\n  - name: alice\n") {
		t.Errorf("file:\n%s", data)
	}
	// --role= clears the roles.
	if _, err := passwd(t, "new\n", "--file", file, "--user", "alice", "--role="); err != nil {
		t.Fatal(err)
	}
	if id, err := login(loadUsers(t, file), "alice", "new"); err != nil || len(id.Roles) != 0 {
		t.Errorf("alice after --role=: %+v, %v", id, err)
	}

	// The file works as auth.static.file.
	_, opts, err := load(t, fmt.Sprintf("auth: {mode: static, static: {file: %q}}", file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login(opts.Authenticator, "bob", "bob pw"); err != nil {
		t.Errorf("bob through the configuration: %v", err)
	}

	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the users file", len(entries))
	}
}

func TestPasswdErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "users.yaml")
	tests := []struct {
		name  string
		input string
		args  []string
		usage bool
		want  string
	}{
		{"no file", "pw\n", []string{"--user", "alice"}, true, "--file is required"},
		{"no user", "pw\n", []string{"--file", file}, true, "--user is required"},
		{"stray argument", "pw\n", []string{"--file", file, "--user", "alice", "extra"}, true, `"extra"`},
		{"unknown flag", "pw\n", []string{"--file", file, "--user", "alice", "--password", "x"}, true, "password"},
		{"bad cost", "pw\n", []string{"--file", file, "--user", "alice", "--cost", "99"}, true, "--cost"},
		{"bad user", "pw\n", []string{"--file", file, "--user", "a/b"}, false, `"a/b" is not a valid user name`},
		{"bad role", "pw\n", []string{"--file", file, "--user", "alice", "--role", "a+b"}, false, `"a+b" is not a valid role name`},
		{"no input", "", []string{"--file", file, "--user", "alice"}, false, "no password"},
		{"empty password", "\n", []string{"--file", file, "--user", "alice"}, false, "empty"},
		{"password too long", strings.Repeat("x", acl.MaxPasswordLen+1) + "\n", []string{"--file", file, "--user", "alice"}, false, "longer than 72 bytes"},
		{"huge line", strings.Repeat("x", 5000), []string{"--file", file, "--user", "alice"}, false, "longer than"},
		{"broken file", "pw\n", []string{"--file", broken, "--user", "alice"}, false, broken},
		{"missing directory", "pw\n", []string{"--file", filepath.Join(dir, "no", "users.yaml"), "--user", "alice"}, false, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runPasswd(tt.args, strings.NewReader(tt.input), new(bytes.Buffer), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, errUsage) != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", errors.Is(err, errUsage), tt.usage, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed passwd created the file: %v", err)
	}
	if data, _ := os.ReadFile(broken); string(data) != "users: [\n" {
		t.Errorf("a failed passwd changed the broken file: %q", data)
	}
}

func TestPasswdHelp(t *testing.T) {
	if err := runPasswd([]string{"-h"}, strings.NewReader(""), new(bytes.Buffer), nil); !errors.Is(err, pflag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	var buf bytes.Buffer
	printPasswdUsage(&buf)
	for _, s := range []string{"--file", "--user", "--role", "--cost", "standard input", "0600"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("passwd usage does not mention %s", s)
		}
	}
	buf.Reset()
	printUsage(&buf)
	if !strings.Contains(buf.String(), "broker passwd") {
		t.Error("broker usage does not mention the passwd command")
	}
	var prompt bytes.Buffer
	file := filepath.Join(t.TempDir(), "u.yaml")
	if err := runPasswd([]string{"--file", file, "--user", "zed", "--cost", "4"}, strings.NewReader("pw\n"), new(bytes.Buffer), &prompt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prompt.String(), "Password for zed") || strings.Contains(prompt.String(), "pw\n") {
		t.Errorf("prompt %q", prompt.String())
	}
}
