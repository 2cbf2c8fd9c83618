package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/spf13/cobra"
)

// version is the release this binary was built as, set at build time with
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/annals
//
// Empty means the module version from the build info: the tag for `go install ...@v1.2.3`, a
// pseudo-version or "(devel)" for a build from a checkout.
var version string

// buildVersion is this binary's version with what the build info adds: the commit, its time,
// whether the checkout had uncommitted changes, and the Go toolchain.
func buildVersion() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	if !ok {
		return v
	}
	var details []string
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		details = append(details, "commit "+rev[:min(12, len(rev))])
	}
	if at := settings["vcs.time"]; at != "" {
		details = append(details, at)
	}
	if settings["vcs.modified"] == "true" {
		details = append(details, "with uncommitted changes")
	}
	details = append(details, bi.GoVersion)
	return v + " (" + strings.Join(details, ", ") + ")"
}

// printVersion writes the build's version, the schema version it expects and, when a database is
// configured and answers within a few seconds, the version installed there. It never fails on the
// database's account: a version check must work where there is none.
func printVersion(ctx context.Context, cmd *cobra.Command, db *dbFlag) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "annals %s\n", buildVersion())
	want := annals.SchemaVersion()
	fmt.Fprintf(out, "schema: this build expects version %d\n", want)
	fmt.Fprintf(out, "database: %s\n", installedVersion(ctx, cmd, db, want))
}

// installedVersion describes the schema version installed in the configured database.
func installedVersion(ctx context.Context, cmd *cobra.Command, db *dbFlag, want int64) string {
	if _, err := resolveDatabaseURL(db.url); err != nil {
		return "not checked: set DATABASE_URL or pass --database-url to compare with the installed schema"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pool, err := db.pool(ctx, cmd)
	if err != nil {
		return "not reachable: " + explain(err)
	}
	defer pool.Close()
	var got int64
	err = pool.QueryRow(ctx, "SELECT annals.schema_version()").Scan(&got)
	switch {
	case annals.Kind(err) == annals.ErrSchemaNotInstalled:
		return "Annals is not installed there: run `annals migrate`"
	case err != nil:
		return "cannot tell: " + explain(err)
	case got < want:
		return fmt.Sprintf("version %d installed, behind this build's %d: run `annals migrate`", got, want)
	case got > want:
		return fmt.Sprintf("version %d installed, newer than this build's %d: upgrade this annals binary", got, want)
	}
	return fmt.Sprintf("version %d installed, as this build expects", got)
}

// versionFlags adds --version and --database-url (for --version's database check) to the root.
func versionFlags(root *cobra.Command) (show *bool, db *dbFlag) {
	show = root.Flags().Bool("version", false, "print this build's version, the schema version it expects and the one installed in the database")
	db = addDatabaseFlag(root)
	return show, db
}
