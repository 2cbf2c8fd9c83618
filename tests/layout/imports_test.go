// Package layout checks the shape of the module: which packages may import which.
package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/annals-db/annals"

// TestNoImportOfExamples: arrows point down only. The library (goapi/), the CLI (cmd/) and
// internal/ never import an example, not even from their tests; what they share with an example
// lives in internal/ (the inventory domain is internal/inventory).
func TestNoImportOfExamples(t *testing.T) {
	t.Parallel()
	edges := forbiddenImports(t, true, module+"/examples", module+"/goapi/...", module+"/cmd/...", module+"/internal/...")
	require.Empty(t, edges, "packages of goapi/, cmd/ or internal/ (or their dependencies) import an example; move the shared code to internal/")
}

// TestClientBelowDomain: package annals (the client) never depends on the domain layer built on
// it, nor on the CLI or internal/ (its tests may: annalstest serves both layers).
func TestClientBelowDomain(t *testing.T) {
	t.Parallel()
	for _, above := range []string{module + "/goapi/domain", module + "/internal", module + "/cmd"} {
		edges := forbiddenImports(t, false, above, module+"/goapi")
		require.Empty(t, edges, "package annals (goapi) must not import %s", above)
	}
}

// TestForbiddenImportsFinds keeps the check above honest: the same search does find an import
// that exists.
func TestForbiddenImportsFinds(t *testing.T) {
	t.Parallel()
	edges := forbiddenImports(t, true, module+"/internal/inventory", module+"/cmd/annals")
	require.Contains(t, edges, module+"/internal/demo -> "+module+"/internal/inventory")
}

// forbiddenImports lists, as "importer -> imported", every import of a package under forbidden
// by the packages named by patterns (and, withTests, their tests), or anything they depend on.
func forbiddenImports(t *testing.T, withTests bool, forbidden string, patterns ...string) []string {
	t.Helper()
	args := []string{"list", "-deps", "-json=ImportPath,Imports"}
	if withTests {
		args = append(args, "-test")
	}
	args = append(args, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())

	under := func(path string) bool {
		path, _, _ = strings.Cut(path, " ") // a test variant: "pkg [pkg.test]"
		return path == forbidden || strings.HasPrefix(path, forbidden+"/")
	}
	seen := map[string]bool{}
	var edges []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if under(p.ImportPath) {
			continue
		}
		for _, imp := range p.Imports {
			if !under(imp) {
				continue
			}
			from, _, _ := strings.Cut(p.ImportPath, " ")
			to, _, _ := strings.Cut(imp, " ")
			if e := from + " -> " + to; !seen[e] {
				seen[e] = true
				edges = append(edges, e)
			}
		}
	}
	sort.Strings(edges)
	return edges
}

// TestFunctionsPreamble: every functions/ file starts with the preamble CONTRIBUTING.md explains
// (created as annals_owner, with a pinned search path), but the history guard's, which must be
// created by a superuser.
func TestFunctionsPreamble(t *testing.T) {
	t.Parallel()
	const preamble = "-- +goose Up\nSET LOCAL ROLE annals_owner;\nSET LOCAL search_path = pg_catalog, pg_temp;\n"
	files, err := filepath.Glob("../../functions/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if filepath.Base(f) == "011_history_guard.sql" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(b), preamble), "%s does not start with the preamble", f)
	}
}
