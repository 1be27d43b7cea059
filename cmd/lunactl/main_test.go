package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lunadb/luna/client"
)

// sampleBatch has NULLs, non-ASCII text and characters that need escaping.
func sampleBatch(t *testing.T) arrow.RecordBatch {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 22, 0}, []bool{true, true, false})
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"Zoë", "日本語", ""}, []bool{true, true, false})
	b.Field(2).(*array.BooleanBuilder).AppendValues([]bool{true, false, false}, []bool{true, true, false})
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{1.5, -2, 0}, []bool{true, true, false})
	rec := b.NewRecordBatch()
	t.Cleanup(rec.Release)
	return rec
}

func render(t *testing.T, format string, rec arrow.RecordBatch) string {
	t.Helper()
	var out bytes.Buffer
	p, err := newPrinter(format, &out, rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.write(rec); err != nil {
		t.Fatal(err)
	}
	if err := p.finish(rec.NumRows(), 12300*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestTable(t *testing.T) {
	// Numbers align right; 日本語 is three characters but six columns wide.
	want := `+------+--------+-------+-------+
|   id | name   | ok    | score |
+------+--------+-------+-------+
|    1 | Zoë    | true  |   1.5 |
|   22 | 日本語 | false |    -2 |
| NULL | NULL   | NULL  |  NULL |
+------+--------+-------+-------+
(3 rows, 12.3ms)
`
	if got := render(t, "table", sampleBatch(t)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestTableEscapesAndEmpty(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append("a\nb\tc")
	rec := b.NewRecordBatch()
	defer rec.Release()
	want := "+---------+\n| s       |\n+---------+\n| a\\nb\\tc |\n+---------+\n(1 row, 12.3ms)\n"
	if got := render(t, "table", rec); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	var out bytes.Buffer
	p, _ := newPrinter("table", &out, schema)
	p.finish(0, 0)
	if want := "+---+\n| s |\n+---+\n(0 rows, 0s)\n"; out.String() != want {
		t.Errorf("zero rows: got %q, want %q", out.String(), want)
	}

	out.Reset()
	p, _ = newPrinter("table", &out, arrow.NewSchema(nil, nil))
	p.finish(0, 0)
	if out.String() != "OK\n" {
		t.Errorf("no result set: got %q, want OK", out.String())
	}
}

func TestHeaderWiderThanCells(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "größe", Type: arrow.PrimitiveTypes.Int32}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int32Builder).Append(7)
	rec := b.NewRecordBatch()
	defer rec.Release()
	want := "+-------+\n| größe |\n+-------+\n|     7 |\n+-------+\n(1 row, 12.3ms)\n"
	if got := render(t, "table", rec); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestCSV(t *testing.T) {
	want := "id,name,ok,score\n1,Zoë,true,1.5\n22,日本語,false,-2\n,,,\n"
	if got := render(t, "csv", sampleBatch(t)); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJSON(t *testing.T) {
	want := `{"id":1,"name":"Zoë","ok":true,"score":1.5}
{"id":22,"name":"日本語","ok":false,"score":-2}
{"id":null,"name":null,"ok":null,"score":null}
`
	if got := render(t, "json", sampleBatch(t)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestJSONSpecialValues(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "<f>", Type: arrow.PrimitiveTypes.Float64},
		{Name: "s", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Float64Builder).Append(math.NaN())
	b.Field(1).(*array.StringBuilder).Append("a<b & \"c\"\n")
	rec := b.NewRecordBatch()
	defer rec.Release()
	want := `{"<f>":"NaN","s":"a<b & \"c\"\n"}` + "\n"
	if got := render(t, "json", rec); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestArrowOutput(t *testing.T) {
	rec := sampleBatch(t)
	out := render(t, "arrow", rec)
	rdr, err := ipc.NewReader(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	if !rdr.Next() {
		t.Fatalf("no batch: %v", rdr.Err())
	}
	if !array.RecordEqual(rdr.RecordBatch(), rec) {
		t.Error("round-tripped batch differs")
	}
	if rdr.Next() {
		t.Error("unexpected second batch")
	}
}

func TestFormatElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		12345678 * time.Nanosecond:   "12.3ms",
		1234567890 * time.Nanosecond: "1.235s",
		4567 * time.Nanosecond:       "5µs",
	} {
		if got := formatElapsed(d).String(); got != want {
			t.Errorf("formatElapsed(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args   []string
		exec   bool
		format string
	}{
		{[]string{"-p", "SELECT 1"}, false, "table"},
		{[]string{"-x", "-p", "CREATE TABLE t(a INT)"}, true, "table"},
		{[]string{"-q", "--format", "json"}, false, "json"},
		{[]string{"-type", "x:"}, true, "table"},
		{[]string{"--type=q:", "-q", "-format=csv"}, false, "csv"},
		{[]string{"-x", "-type", "x"}, true, "table"},
	}
	for _, tt := range tests {
		cfg, err := parseFlags(tt.args, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if cfg.exec != tt.exec || cfg.format != tt.format || cfg.addr != client.DefaultAddr || cfg.prefix != "$" {
			t.Errorf("%q: got %+v", tt.args, cfg)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"-p", "a", "-f", "b"},
		{"-p", "", "-f", "b"},
		{"--format", "xml"},
		{"-x", "-q"},
		{"-type", "z:"},
		{"-x", "-type", "q:"},
		{"-timeout", "soon"},
		{"-p", "a", "extra"},
		{},                                   // no statement and stdin is a terminal
		{"-p", " \n"},                        // blank statement
		{"-user", "alice", "-p", "SELECT 1"}, // no -pass
		{"-user", "al ice", "-pass", "pw", "-p", "SELECT 1"}, // space in the name
	} {
		var stderr bytes.Buffer
		e := env{stdin: strings.NewReader(""), stdinTTY: true, stdout: &bytes.Buffer{}, stderr: &stderr}
		if code := run(context.Background(), args, e); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr.String())
		}
		if stderr.Len() == 0 {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

func TestUserFlag(t *testing.T) {
	cfg, err := parseFlags([]string{"-user", "alice", "-pass", "two words", "-p", "SELECT 1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.pass != "alice two words" {
		t.Errorf("AUTH text %q, want the user then the password", cfg.pass)
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	e := env{stdout: &bytes.Buffer{}, stderr: &stderr, stdinTTY: true}
	if code := run(context.Background(), []string{"-h"}, e); code != exitOK {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "-format") {
		t.Errorf("usage does not list flags: %q", stderr.String())
	}
}

func TestReadStatement(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.sql")
	if err := os.WriteFile(file, []byte("SELECT 'ü';\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	piped := env{stdin: strings.NewReader("SELECT 2"), stdinTTY: false}
	tests := []struct {
		cfg  config
		e    env
		want string
	}{
		{config{payload: "SELECT 1", hasP: true}, piped, "SELECT 1"},
		{config{file: file}, piped, "SELECT 'ü';\n"},
		{config{file: "-"}, piped, "SELECT 2"},
		{config{}, env{stdin: strings.NewReader("SELECT 3")}, "SELECT 3"},
	}
	for _, tt := range tests {
		got, err := readStatement(&tt.cfg, tt.e)
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.cfg, got, err, tt.want)
		}
		if s, ok := tt.e.stdin.(*strings.Reader); ok {
			s.Seek(0, 0)
		}
	}
	var ue *usageError
	if _, err := readStatement(&config{}, env{stdinTTY: true}); !errors.As(err, &ue) {
		t.Errorf("terminal stdin without -p/-f: got %v, want usage error", err)
	}
	if _, err := readStatement(&config{file: filepath.Join(t.TempDir(), "missing")}, piped); err == nil || errors.As(err, &ue) {
		t.Errorf("missing file: got %v, want a plain error", err)
	}
}

func TestRawRequest(t *testing.T) {
	if got, want := string(rawRequest("$", "q:", "SELECT 'ß'")), string(client.AppendRequest(nil, "q:", "SELECT 'ß'")); got != want {
		t.Errorf("$ prefix: got %q, want %q", got, want)
	}
	if got, want := string(rawRequest("#", "x:", "ab")), "#4\r\nx:ab\r\n"; got != want {
		t.Errorf("# prefix: got %q, want %q", got, want)
	}
}

func TestErrorText(t *testing.T) {
	if got := errorText(&client.Error{Input: "x", Message: "Catalog Error: nope"}); got != "Catalog Error: nope" {
		t.Errorf("got %q", got)
	}
	if got := errorText(client.ErrIncompleteResult); got != "connection closed before end of result" {
		t.Errorf("got %q", got)
	}
}
