// Package cli_test runs the annals command as a user would: the binary is built once per test
// process, and every test runs it against a fresh database of its own (annalstest.NewDBURL).
package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin is the annals binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "annals-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli tests:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "annals")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/annals-db/annals/cmd/annals").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cli tests: go build ./cmd/annals: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
