package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/bcrypt"

	"github.com/roomq/roomq/acl"
)

// passwdCommand is the first argument that selects the passwd subcommand.
const passwdCommand = "passwd"

// usersFileHeader starts every users file the passwd subcommand writes.
const usersFileHeader = "# roomq users for auth.mode static, written by `broker passwd`.\n" +
	"# Each entry: name, hash (bcrypt) and roles. Comments are not kept.\n"

// maxPasswordLine bounds the line read from standard input.
const maxPasswordLine = 1024

// passwdMain runs `broker passwd` with args (what follows "passwd") and returns the exit
// status: 0, 1 for a failure, 2 for a malformed command line.
func passwdMain(args []string) int {
	var prompt io.Writer
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		prompt = os.Stderr // a person is typing
	}
	err := runPasswd(args, os.Stdin, os.Stdout, prompt)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		printPasswdUsage(os.Stdout)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "broker passwd: %v\n\n", err)
		printPasswdUsage(os.Stderr)
		return 2
	}
	fmt.Fprintln(os.Stderr, "broker passwd:", err)
	return 1
}

func newPasswdFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("broker passwd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.String("file", "", "the users `file` (auth.static.file); created when missing")
	fs.String("user", "", "the user `name` to add or update")
	fs.StringSlice("role", nil, "a `role` of the user, such as admin (repeat or comma-separate); without it an existing user keeps theirs")
	fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt `cost`, %d to %d; give all users the same", bcrypt.MinCost, bcrypt.MaxCost))
	fs.BoolP("help", "h", false, "print this help and exit")
	return fs
}

// printPasswdUsage writes the help of the passwd subcommand to w.
func printPasswdUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: broker passwd --file FILE --user NAME [--role ROLE]...

Adds a user to the users file of auth.mode static, or changes an existing user's password
(and roles, when --role is given). The password is the first line of standard input, so it
can be piped: printf '%%s\n' "$PASSWORD" | broker passwd --file users.yaml --user alice
It is typed visibly when standard input is a terminal. At most %d bytes.

The file is rewritten atomically with mode 0600. A running broker reads it only at start.

Flags:
%s`, acl.MaxPasswordLen, newPasswdFlagSet().FlagUsages())
}

// runPasswd is `broker passwd`: it reads the password from the first line of stdin (after
// writing a prompt to prompt, when not nil) and sets the user's entry in the users file. It
// reports what it did on stdout. It returns pflag.ErrHelp for -h and an error wrapping
// errUsage for a malformed command line.
func runPasswd(args []string, stdin io.Reader, stdout, prompt io.Writer) error {
	flags := newPasswdFlagSet()
	if err := flags.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if help, _ := flags.GetBool("help"); help {
		return pflag.ErrHelp
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, flags.Arg(0))
	}
	file, _ := flags.GetString("file")
	user, _ := flags.GetString("user")
	cost, _ := flags.GetInt("cost")
	var roles []string
	if flags.Changed("role") {
		roles, _ = flags.GetStringSlice("role")
		roles = append([]string{}, roles...) // --role= clears the roles
	}
	switch {
	case file == "":
		return fmt.Errorf("%w: --file is required", errUsage)
	case user == "":
		return fmt.Errorf("%w: --user is required", errUsage)
	case cost < bcrypt.MinCost || cost > bcrypt.MaxCost:
		return fmt.Errorf("%w: --cost must be between %d and %d", errUsage, bcrypt.MinCost, bcrypt.MaxCost)
	}

	// Read the file first, so that a broken file is reported before a password is typed.
	var users []acl.StaticUser
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if users, err = acl.ParseStaticUsers(data); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}

	if prompt != nil {
		fmt.Fprintf(prompt, "Password for %s (shown as you type): ", user)
	}
	password, err := readPasswordLine(stdin)
	if err != nil {
		return err
	}
	existed := false
	for _, u := range users {
		existed = existed || u.Name == user
	}
	users, err = acl.SetStaticUser(users, user, password, roles, cost)
	if err != nil {
		return err
	}
	out, err := acl.MarshalStaticUsers(users)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(file, append([]byte(usersFileHeader), out...), 0o600); err != nil {
		return err
	}
	verb := "added"
	if existed {
		verb = "updated"
	}
	fmt.Fprintf(stdout, "%s user %s in %s\n", verb, user, file)
	return nil
}

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) ([]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxPasswordLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, fmt.Errorf("password line longer than %d bytes", maxPasswordLine)
			}
			return nil, fmt.Errorf("read password: %w", err)
		}
		return nil, errors.New("no password on standard input")
	}
	line := strings.TrimSuffix(sc.Text(), "\r")
	if line == "" {
		return nil, errors.New("the password is empty")
	}
	return []byte(line), nil
}

// writeFileAtomic replaces path with data: it writes a temporary file in the same directory,
// flushes it to disk and renames it over path, so that readers see the old or the new
// content, never a part.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; not every system can sync a directory.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
