package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// block is a fenced code block of a Markdown file with the docs-test directives before it.
type block struct {
	file       string // relative to the repository root
	line       int    // 1-based line of the opening fence
	lines      []string
	directives []directive
}

type directive struct {
	key, arg string
	line     int
}

// where is the block's position for messages; n is an index into lines.
func (b *block) where(n int) string {
	return b.file + ":" + strconv.Itoa(b.line+1+n)
}

func (b *block) directive(key string) []directive {
	var out []directive
	for _, d := range b.directives {
		if d.key == key {
			out = append(out, d)
		}
	}
	return out
}

// isSQL: a psql session.
func (b *block) isSQL() bool { return b.hasPrefix("=# ") }

// isShell: a shell session.
func (b *block) isShell() bool { return !b.isSQL() && b.hasPrefix("$ ") }

func (b *block) hasPrefix(p string) bool {
	return slices.ContainsFunc(b.lines, func(l string) bool { return strings.HasPrefix(l, p) })
}

var directiveKeys = []string{"skip", "varies", "setup", "new-database", "meanwhile", "log"}

var directiveRE = regexp.MustCompile(`(?s)^<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->$`)

// markdownFiles lists the repository's tracked Markdown files (found by walking the tree, so
// new ones are checked too), relative to the root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "vendor" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(repoRoot, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(t, err)
	slices.Sort(files)
	return files
}

// parseMarkdown returns the file's fenced blocks that a docs test checks, with their
// directives. Blocks marked skip are left out.
func parseMarkdown(t *testing.T, file string) []*block {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	require.NoError(t, err)
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	var out []*block
	var pending []directive
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "<!--") && strings.Contains(trimmed, "docs-test:"):
			start := i
			text := trimmed
			for !strings.HasSuffix(strings.TrimSpace(text), "-->") && i+1 < len(lines) {
				i++
				text += "\n" + lines[i]
			}
			m := directiveRE.FindStringSubmatch(strings.TrimSpace(text))
			require.NotNil(t, m, "%s:%d: a docs-test comment must be <!-- docs-test: KEY ARGS -->", file, start+1)
			require.Contains(t, directiveKeys, m[1], "%s:%d: unknown docs-test directive %q", file, start+1, m[1])
			pending = append(pending, directive{key: m[1], arg: m[2], line: start + 1})
		case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
			fence := trimmed[:3]
			indent := len(l) - len(strings.TrimLeft(l, " "))
			blk := &block{file: file, line: i + 1, directives: pending}
			pending = nil
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != fence; i++ {
				c := lines[i]
				if len(c)-len(strings.TrimLeft(c, " ")) >= indent {
					c = c[indent:]
				}
				blk.lines = append(blk.lines, c)
			}
			if len(blk.directive("skip")) == 0 && (blk.isSQL() || blk.isShell() || len(blk.directive("log")) > 0) {
				out = append(out, blk)
			}
		}
	}
	require.Empty(t, pending, "%s: docs-test directives after the last block", file)
	return out
}

// variesPatterns compiles the block's varies directives.
func (b *block) variesPatterns(t *testing.T) []*regexp.Regexp {
	t.Helper()
	var out []*regexp.Regexp
	for _, d := range b.directive("varies") {
		re, err := regexp.Compile("^(?:" + d.arg + ")$")
		require.NoError(t, err, "%s:%d: varies", b.file, d.line)
		out = append(out, re)
	}
	return out
}

// shownLines are the lines a block shows after a command or statement, as compared: not blank,
// not an elision ("..." or starting with "…"), not a "^C".
func isElision(l string) bool {
	s := strings.TrimSpace(l)
	return s == "..." || strings.HasPrefix(s, "…")
}
