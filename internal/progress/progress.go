// Package progress shows how far long CLI work (rebuilds, demo steps, storage moves) has got:
// a bar redrawn in place on a terminal, a line per tenth in a log.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar draws done/total on a terminal (redrawn in place) or, when the output is a file or
// a pipe, prints a line at every tenth.
type Bar struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	tty     bool
	drawn   bool
	lastPct int
}

// New returns a bar that writes to w, prefixed with label.
func New(w io.Writer, label string) *Bar {
	return &Bar{w: w, label: label, tty: IsTerminal(w), lastPct: -1}
}

// Update shows done of total.
func (p *Bar) Update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := 100
	if total > 0 {
		pct = int(min(done, total) * 100 / total)
	}
	if p.tty {
		const width = 30
		fill := pct * width / 100
		fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %3d%%", p.label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, pct)
		p.drawn = true
		return
	}
	if pct/10 > p.lastPct/10 || p.lastPct < 0 {
		fmt.Fprintf(p.w, "%s: %d/%d events (%d%%)\n", p.label, done, total, pct)
		p.lastPct = pct
	}
}

// Finish ends the bar: a newline on a terminal, or " failed" when ok is false.
func (p *Bar) Finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		if ok {
			fmt.Fprintln(p.w)
		} else {
			fmt.Fprintln(p.w, " failed")
		}
	}
}

// IsTerminal reports whether w is a terminal (so a bar may redraw in place).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Duration shows how long work took, to the millisecond below a second, else to 10 ms.
func Duration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
