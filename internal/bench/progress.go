package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a bar on a terminal (redrawn in place four times a second) or, on anything
// else (a CI log), one line per step. Steps carry estimated durations; the bar moves with the
// estimates so it stays monotonic when a step runs long.
type progress struct {
	w   io.Writer
	tty bool

	mu       sync.Mutex
	total    time.Duration
	done     time.Duration
	label    string
	est      time.Duration
	stepAt   time.Time
	startAt  time.Time
	stop     chan struct{}
	stopped  chan struct{}
	lastLine int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// start sets the estimated total and starts redrawing.
func (p *progress) start(total time.Duration) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	p.total, p.done, p.startAt = max(total, time.Second), 0, time.Now()
	p.mu.Unlock()
	if p.tty {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(p.stopped)
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.mu.Lock()
					p.draw()
					p.mu.Unlock()
				}
			}
		}()
	}
}

// step ends the current step (counting its estimate as done) and starts the next.
func (p *progress) step(label string, est time.Duration) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stepAt.IsZero() {
		p.done += p.est
	}
	p.label, p.est, p.stepAt = label, est, time.Now()
	if p.tty {
		p.draw()
		return
	}
	if p.total > 0 {
		fmt.Fprintf(p.w, "[%3.0f%% %5.1fs] %s\n", 100*p.fraction(), time.Since(p.startAt).Seconds(), label)
	} else {
		fmt.Fprintf(p.w, "[....] %s\n", label)
	}
}

// note prints a line that stays (above the bar on a terminal).
func (p *progress) note(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.lastLine))
	}
	fmt.Fprintf(p.w, "annals bench: "+format+"\n", args...)
	if p.tty && p.total > 0 {
		p.draw()
	}
}

func (p *progress) finish() {
	if p == nil || p.w == nil {
		return
	}
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.stop = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	elapsed := time.Since(p.startAt).Round(time.Second)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.lastLine))
	}
	fmt.Fprintf(p.w, "annals bench: finished in %s\n", elapsed)
	p.total, p.stepAt = 0, time.Time{}
}

// fraction is the estimated share done; the caller holds mu.
func (p *progress) fraction() float64 {
	cur := time.Duration(0)
	if !p.stepAt.IsZero() {
		cur = min(time.Since(p.stepAt), p.est)
	}
	f := float64(p.done+cur) / float64(p.total)
	return min(f, 0.99)
}

// draw redraws the bar in place; the caller holds mu.
func (p *progress) draw() {
	if p.total == 0 {
		return
	}
	const width = 30
	f := p.fraction()
	n := int(f * width)
	eta := ""
	if elapsed := time.Since(p.startAt); f > 0.02 {
		left := time.Duration(float64(elapsed) * (1 - f) / f).Round(time.Second)
		eta = fmt.Sprintf("  ~%s left", left)
	}
	line := fmt.Sprintf("[%s%s] %3.0f%%  %s%s", strings.Repeat("#", n), strings.Repeat(".", width-n), 100*f, p.label, eta)
	if len(line) > 120 {
		line = line[:120]
	}
	pad := max(p.lastLine-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.lastLine = len(line)
}
