// Package objstoretest is the conformance suite every objstore.Bucket
// implementation runs against a real server (an emulator on loopback).
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/server/objstore"
)

// Run checks b, an empty bucket. del removes an object behind the
// bucket's back, as another writer would.
func Run(t *testing.T, b objstore.Bucket, del func(key string) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	put := func(key, data string) {
		t.Helper()
		if err := b.Upload(ctx, key, strings.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("upload %s: %v", key, err)
		}
	}
	get := func(key string) (string, objstore.Object) {
		t.Helper()
		var buf bytes.Buffer
		o, err := b.Download(ctx, key, &buf)
		if err != nil {
			t.Fatalf("download %s: %v", key, err)
		}
		return buf.String(), o
	}

	t.Run("upload download", func(t *testing.T) {
		put("dir/a.csv", "x,y\n1,2\n")
		data, o := get("dir/a.csv")
		if data != "x,y\n1,2\n" || o.Key != "dir/a.csv" || o.Size != 8 || o.Version == "" {
			t.Fatalf("got %q %+v", data, o)
		}
		if strings.HasPrefix(o.Version, `"`) {
			t.Fatalf("version %q keeps its quotes", o.Version)
		}
	})
	t.Run("version changes with content", func(t *testing.T) {
		put("v.txt", "one")
		_, o1 := get("v.txt")
		_, again := get("v.txt")
		put("v.txt", "two!")
		data, o2 := get("v.txt")
		if o1.Version != again.Version || o1.Version == o2.Version || data != "two!" || o2.Size != 4 {
			t.Fatalf("versions %q %q %q, data %q", o1.Version, again.Version, o2.Version, data)
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, err := b.Download(ctx, "no/such/key", &bytes.Buffer{})
		if !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("list", func(t *testing.T) {
		// More than one page of results on every service.
		for i := range 1100 {
			put(fmt.Sprintf("many/part=%d/f%04d.csv", i%3, i), "a\n1\n")
		}
		put("many.txt", "not under many/")
		objs, err := b.List(ctx, "many/")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 1100 {
			t.Fatalf("listed %d objects, want 1100", len(objs))
		}
		for i, o := range objs {
			if i > 0 && objs[i-1].Key >= o.Key {
				t.Fatalf("not ordered: %s before %s", objs[i-1].Key, o.Key)
			}
			if !strings.HasPrefix(o.Key, "many/part=") || o.Size != 4 || o.Version == "" {
				t.Fatalf("bad object %+v", o)
			}
		}
		all, err := b.List(ctx, "")
		if err != nil || len(all) < 1101 {
			t.Fatalf("listing the bucket: %d, %v", len(all), err)
		}
	})
	t.Run("deleted object disappears", func(t *testing.T) {
		put("gone/x.csv", "1")
		if err := del("gone/x.csv"); err != nil {
			t.Fatal(err)
		}
		objs, err := b.List(ctx, "gone/")
		if err != nil || len(objs) != 0 {
			t.Fatalf("after delete: %v, %v", objs, err)
		}
	})
	t.Run("large object", func(t *testing.T) {
		big := strings.Repeat("0123456789abcdef", 1<<18) // 4 MiB: multipart on some SDKs
		put("big.bin", big)
		data, o := get("big.bin")
		if data != big || o.Size != int64(len(big)) {
			t.Fatalf("big object: %d bytes, size %d", len(data), o.Size)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.List(cctx, ""); err == nil {
			t.Fatal("list with a canceled context succeeded")
		}
	})
}
