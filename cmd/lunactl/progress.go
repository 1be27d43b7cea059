package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// progressDelay is how long a statement runs before its progress line
// appears; progressEvery how often it is redrawn.
const (
	progressDelay = time.Second
	progressEvery = 250 * time.Millisecond
)

// progressLine draws, on the terminal's stderr, how far the running
// statement has got, as the server's luna_sessions() tells it, and wipes
// itself when stopped.
type progressLine struct {
	w    io.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// startProgress begins polling status (the running statement's row of
// luna_sessions(), or an error) after progressDelay.
func startProgress(w io.Writer, start time.Time, status func(context.Context) (sessionProgress, error)) *progressLine {
	p := &progressLine{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTimer(progressDelay)
		defer t.Stop()
		drawn := false
		for {
			select {
			case <-p.stop:
				if drawn {
					io.WriteString(p.w, "\r\x1b[K")
				}
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			sp, err := status(ctx)
			cancel()
			line := sp.String(time.Since(start))
			if err != nil {
				line = fmt.Sprintf("running %.1fs", time.Since(start).Seconds())
			}
			io.WriteString(p.w, "\r\x1b[K"+line)
			drawn = true
			t.Reset(progressEvery)
		}
	}()
	return p
}

// end wipes the line; it returns once the line is gone, so what is
// printed next does not share the screen line with it.
func (p *progressLine) end() {
	if p == nil {
		return
	}
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// sessionProgress is what luna_sessions() says of a running statement.
type sessionProgress struct {
	percent    float64 // -1: unknown
	rows       int64   // rows processed, -1: unknown
	downloaded int64   // object-store bytes fetched
}

// progressQuery reads a session's progress columns.
func progressQuery(id uint64) string {
	return "SELECT progress, rows_processed, bytes_downloaded FROM luna_sessions() WHERE id = " + strconv.FormatUint(id, 10)
}

// readProgress reads progressQuery's one row.
func readProgress(rec arrow.RecordBatch) sessionProgress {
	sp := sessionProgress{percent: -1, rows: -1}
	if rec.NumRows() < 1 || rec.NumCols() < 3 {
		return sp
	}
	if c, ok := rec.Column(0).(*array.Float64); ok && c.IsValid(0) {
		sp.percent = c.Value(0)
	}
	if c, ok := rec.Column(1).(*array.Int64); ok && c.IsValid(0) {
		sp.rows = c.Value(0)
	}
	if c, ok := rec.Column(2).(*array.Int64); ok && c.IsValid(0) {
		sp.downloaded = c.Value(0)
	}
	return sp
}

func (sp sessionProgress) String(elapsed time.Duration) string {
	var parts []string
	if sp.percent >= 0 {
		parts = append(parts, fmt.Sprintf("%5.1f%%", sp.percent))
	}
	if sp.rows >= 0 {
		parts = append(parts, groupDigits(sp.rows)+" rows")
	}
	if sp.downloaded > 0 {
		parts = append(parts, formatBytes(sp.downloaded)+" downloaded")
	}
	parts = append(parts, fmt.Sprintf("%.1fs", elapsed.Seconds()))
	return strings.Join(parts, " · ") + " (Ctrl-C cancels)"
}

// groupDigits writes n with thousands separators.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatBytes writes n in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
