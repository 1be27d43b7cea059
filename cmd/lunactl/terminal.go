package main

import (
	"os"

	"golang.org/x/term"
)

// terminal is the terminal the shell runs at.
type terminal struct {
	stdout    *os.File
	stdoutTTY bool // results go to the screen: paging applies
	stderrTTY bool // the progress line can be drawn
}

func osTerminal() *terminal {
	return &terminal{
		stdout:    os.Stdout,
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// size is the screen's width and height, 80×24 when unknown.
func (t *terminal) size() (width, height int) {
	w, h, err := term.GetSize(int(t.stdout.Fd()))
	if err != nil || w <= 0 || h <= 0 {
		return 80, 24
	}
	return w, h
}
