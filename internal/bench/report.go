package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteSettings prints the server settings in effect, a few lines for the top of a report.
func WriteSettings(w io.Writer, s Settings) {
	fmt.Fprintf(w, "PostgreSQL %s at %s, scratch database %s\n", s.Version, s.Server, s.Database)
	fmt.Fprintln(w, "  measured on direct connections to the server, not through a connection pooler")
	fmt.Fprintf(w, "  shared_buffers=%s synchronous_commit=%s fsync=%s wal_level=%s max_connections=%s work_mem=%s\n",
		s.SharedBuffers, s.SynchronousCommit, s.Fsync, s.WalLevel, s.MaxConnections, s.WorkMem)
	fmt.Fprintf(w, "  full_page_writes=%s wal_sync_method=%s commit_delay=%s max_wal_size=%s\n",
		s.FullPageWrites, s.WalSyncMethod, s.CommitDelay, s.MaxWalSize)
	fmt.Fprintf(w, "  client: %d CPUs; statement load generator: %s\n\n", s.ClientCPUs, s.Driver)
}

// WriteJSON writes the results as a JSON array (one object per figure).
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(results)
}

// WriteTable writes the results as an aligned table, followed by how each figure was measured.
func WriteTable(w io.Writer, results []Result) {
	header := []string{"scenario", "value", "unit", "baseline", "ratio", "target", "met"}
	right := []bool{false, true, false, true, true, false, false}
	rows := [][]string{header}
	for _, r := range results {
		base, ratio, tgt, met := "-", "-", "-", "-"
		if r.Baseline != nil {
			base = formatNumber(*r.Baseline)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *r.Ratio)
		}
		if r.Target != "" {
			tgt = r.Target
		}
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		value := formatNumber(r.Value)
		if r.Method == "skipped" {
			value = "skipped"
		}
		rows = append(rows, []string{r.Scenario, value, r.Unit, base, ratio, tgt, met})
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for n, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if n == 0 {
			total := len(widths) * 2
			for _, x := range widths {
				total += x
			}
			fmt.Fprintln(w, strings.Repeat("-", total-2))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "How each figure was measured (value vs baseline):")
	for _, r := range results {
		line := "  " + r.Scenario + ": " + r.Method
		if r.BaselineLabel != "" {
			line += "; baseline: " + r.BaselineLabel
		}
		if r.Note != "" {
			line += "; " + r.Note
		}
		fmt.Fprintln(w, line)
	}
}

// formatNumber prints a figure with as many digits as it deserves: thousands separators for
// large ones, three significant digits for small ones.
func formatNumber(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case math.Abs(x) >= 1000:
		return groupThousands(strconv.FormatFloat(math.Round(x), 'f', 0, 64))
	case math.Abs(x) >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case math.Abs(x) >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case x == 0:
		return "0"
	case math.Abs(x) >= 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
