package remote

import (
	"context"
	"fmt"
	"strings"

	"github.com/lunadb/luna/server/objstore"
)

// matching is the part of a listing that loc names: every key its glob
// matches, or the one key it spells out.
func matching(loc Location, listed []objstore.Object) []objstore.Object {
	var objs []objstore.Object
	for _, o := range listed {
		if (loc.IsGlob() && matchKey(loc.Key, o.Key)) || (!loc.IsGlob() && o.Key == loc.Key) {
			objs = append(objs, o)
		}
	}
	return objs
}

// Change is what a fresh listing found different from the objects a
// statement read.
type Change struct {
	New, Changed, Deleted int
}

// Any reports whether anything changed.
func (c Change) Any() bool { return c.New+c.Changed+c.Deleted > 0 }

// Changes lists the objects each source names now and compares them with
// the versions the statement read. It downloads nothing: a listing carries
// each object's version.
func (r *Resolver) Changes(ctx context.Context, sources []Source) (Change, error) {
	var c Change
	for _, src := range sources {
		loc, ok := ParseLocation(src.URL)
		if !ok {
			return c, fmt.Errorf("%s is not an object-store URL", src.URL)
		}
		b, err := r.bucket(ctx, loc)
		if err != nil {
			return c, err
		}
		listed, err := b.List(ctx, loc.Prefix())
		if err != nil {
			return c, fmt.Errorf("listing %s: %w", loc.URL, err)
		}
		seen := 0
		for _, o := range matching(loc, listed) {
			v, ok := src.Versions[o.Key]
			switch {
			case !ok:
				c.New++
			case v != o.Version:
				seen++
				c.Changed++
			default:
				seen++
			}
		}
		c.Deleted += len(src.Versions) - seen
	}
	return c, nil
}

// Describe names a statement's sources for logs: their URLs and how many
// objects they matched.
func Describe(sources []Source) string {
	parts := make([]string, len(sources))
	for i, s := range sources {
		parts[i] = fmt.Sprintf("%s (%d objects)", s.URL, len(s.Versions))
	}
	return strings.Join(parts, ", ")
}
