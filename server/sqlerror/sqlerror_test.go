package sqlerror

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestRendersTheClassOnce(t *testing.T) {
	e := Errorf(Binder, "read_xlsx: %s given twice", "sheet")
	if e.Error() != "Binder Error: read_xlsx: sheet given twice" || e.Message() != "read_xlsx: sheet given twice" {
		t.Errorf("got %q / %q", e.Error(), e.Message())
	}
	wrapped := Errorf(IO, "fetching %s: %w", "s3://b/k", io.ErrUnexpectedEOF)
	if !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Error("the cause is not unwrapped")
	}
	var se *Error
	if outer := fmt.Errorf("running: %w", wrapped); !errors.As(outer, &se) || se.Class != IO || !Has(outer) {
		t.Errorf("class not found through a wrap: %v", outer)
	}
	if New(Parser, "x").Error() != "Parser Error: x" {
		t.Error("New")
	}
}

func TestClassOf(t *testing.T) {
	for msg, want := range map[string]string{
		"Catalog Error: Table with name me does not exist!": "Catalog",
		"Invalid Input Error: bad":                          "Invalid Input",
		"no class here":                                     "",
		"12 Error: digits are no class":                     "",
		": Error: empty":                                    "",
	} {
		if got := ClassOf(msg); got != want {
			t.Errorf("ClassOf(%q) = %q, want %q", msg, got, want)
		}
	}
	if Has(errors.New("plain")) || !Has(errors.New("IO Error: x")) {
		t.Error("Has")
	}
}
