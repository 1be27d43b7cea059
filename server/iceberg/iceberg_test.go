package iceberg

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
)

func TestDuckType(t *testing.T) {
	for typ, want := range map[iceberg.Type]string{
		iceberg.PrimitiveTypes.Int32: "INTEGER", iceberg.PrimitiveTypes.Int64: "BIGINT",
		iceberg.PrimitiveTypes.String: "VARCHAR", iceberg.DecimalTypeOf(10, 2): "DECIMAL(10, 2)",
		iceberg.PrimitiveTypes.TimestampTz: "TIMESTAMP WITH TIME ZONE", iceberg.PrimitiveTypes.Date: "DATE",
	} {
		if got, err := duckType(typ); err != nil || got != want {
			t.Errorf("duckType(%s) = %q, %v; want %q", typ, got, err, want)
		}
	}
	list := &iceberg.ListType{ElementID: 9, Element: iceberg.PrimitiveTypes.Int32}
	if _, err := duckType(list); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("list type: %v", err)
	}
}

func TestPruningBounds(t *testing.T) {
	long := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	lo, _ := decodeBound(long(10), iceberg.PrimitiveTypes.Int64)
	hi, _ := decodeBound(long(20), iceberg.PrimitiveTypes.Int64)
	for _, c := range []struct {
		op   string
		v    string
		want bool
	}{
		{"=", "15", true}, {"=", "9", false}, {"=", "21", false}, {"<", "10", false}, {"<=", "10", true},
		{">", "20", false}, {">=", "20", true}, {">", "19.5", true},
	} {
		lit, ok := literal(Filter{Column: "x", Op: c.op, Value: c.v}, iceberg.PrimitiveTypes.Int64)
		if !ok {
			t.Fatalf("literal %s", c.v)
		}
		if got := mayMatch(c.op, lit, lo, hi); got != c.want {
			t.Errorf("x %s %s in [10, 20]: %v, want %v", c.op, c.v, got, c.want)
		}
	}
	// A string literal against a number column is never used to prune.
	if _, ok := literal(Filter{Op: "=", Value: "15", String: true}, iceberg.PrimitiveTypes.Int64); ok {
		t.Error("string literal compared with a long")
	}
}

func TestParseMetadata(t *testing.T) {
	for _, c := range []struct{ json, err string }{
		{`{"format-version": 4}`, "format-version 4"},
		{`{"format-version": 2, "current-schema-id": 3, "schemas": [{"type": "struct", "schema-id": 0, "fields": []}]}`, "current-schema-id 3"},
		{`{`, "unexpected end"},
	} {
		if _, err := parseMetadata([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.json, err, c.err)
		}
	}
	m, err := parseMetadata([]byte(`{"format-version": 1, "location": "s3://b/t", "schema": {"type": "struct", "schema-id": 0,
		"fields": [{"id": 1, "name": "a", "required": true, "type": "long"}]}, "current-snapshot-id": -1}`))
	if err != nil || m.CurrentSchema() == nil || m.CurrentSnapshot() != nil {
		t.Fatalf("v1 metadata: %+v, %v", m, err)
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{"file:///a/b": "/a/b", "file:/a/b": "/a/b", "/a/b": "/a/b", "s3://x/y": "s3://x/y"} {
		if got := LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}
