package iceberg

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
)

// fileInfo is what a scan needs of a manifest entry's file beyond its
// path: column statistics and the partition it belongs to.
type fileInfo struct {
	valueCounts  map[int]int64
	lower, upper map[int][]byte
	// partition is the file's partition tuple in a canonical text form;
	// two files of one spec are in the same partition when it is equal.
	partition string
}

// readFileInfo reads a data or delete file's statistics and partition.
//
// iceberg-go v0.4.0 converts a file's partition values the first time any
// statistic is asked for, and a NULL value of a date or time partition
// (day(ts) of a row whose ts is NULL) panics in that conversion. The
// statistics maps are filled before the conversion starts and its
// sync.Once does not run it again, so the panic is contained here; the
// partition is then taken from the manifest record unconverted, which
// holds NULL as nil.
func readFileInfo(df iceberg.DataFile) (fi fileInfo, err error) {
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		df.Partition()
	}()
	// The statistics are safe to read now, whether or not the partition
	// conversion panicked.
	fi.valueCounts = df.ValueCounts()
	fi.lower, fi.upper = df.LowerBoundValues(), df.UpperBoundValues()
	raw, ok := rawPartition(df)
	if !ok {
		if err != nil {
			return fi, fmt.Errorf("reading the partition of %s: %w", df.FilePath(), err)
		}
		raw = map[string]any{}
		for id, v := range df.Partition() {
			raw[fmt.Sprint(id)] = v
		}
	}
	fi.partition = partitionKey(raw)
	return fi, nil
}

// rawPartition is the partition record as the manifest's Avro decoder
// left it, keyed by partition field name.
func rawPartition(df iceberg.DataFile) (map[string]any, bool) {
	v := reflect.ValueOf(df)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, false
	}
	f := v.FieldByName("PartitionData")
	if !f.IsValid() || !f.CanInterface() {
		return nil, false
	}
	m, ok := f.Interface().(map[string]any)
	return m, ok
}

// partitionKey is a canonical text of a partition tuple: fields sorted
// by name, each value with its kind, NULL distinct from every value.
func partitionKey(p map[string]any) string {
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%q=", k)
		writeValue(&b, p[k])
		b.WriteByte(';')
	}
	return b.String()
}

func writeValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case time.Time:
		b.WriteString("t:" + v.UTC().Format(time.RFC3339Nano))
	case time.Duration:
		fmt.Fprintf(b, "d:%d", v.Nanoseconds())
	case []byte:
		b.WriteString("x:" + hex.EncodeToString(v))
	case string:
		fmt.Fprintf(b, "s:%q", v)
	case *big.Rat:
		b.WriteString("r:" + v.RatString())
	case map[string]any:
		// An Avro union decoded as {type: value}.
		b.WriteString("{" + partitionKey(v) + "}")
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Array:
			b.WriteString("a:")
			for i := 0; i < rv.Len(); i++ {
				fmt.Fprintf(b, "%v,", rv.Index(i).Interface())
			}
		default:
			fmt.Fprintf(b, "n:%v", v)
		}
	}
}
