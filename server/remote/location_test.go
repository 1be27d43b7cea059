package remote

import "testing"

func TestParseLocation(t *testing.T) {
	cases := map[string]Location{
		"s3://bucket/a/b*.csv":   {Scheme: S3, Bucket: "bucket", Key: "a/b*.csv"},
		"gs://bkt/987_2025-08*":  {Scheme: GCS, Bucket: "bkt", Key: "987_2025-08*"},
		"gcs://bkt/x":            {Scheme: GCS, Bucket: "bkt", Key: "x"},
		"az://ctr/dir/f.parquet": {Scheme: Azure, Bucket: "ctr", Key: "dir/f.parquet"},
		"azure://ctr/f":          {Scheme: Azure, Bucket: "ctr", Key: "f"},
		"r2://b/k":               {Scheme: R2, Bucket: "b", Key: "k"},
		"abfss://ctr@acct.dfs.core.windows.net/p/q.csv": {Scheme: Azure, Bucket: "ctr", Account: "acct", Key: "p/q.csv"},
	}
	for in, want := range cases {
		got, ok := ParseLocation(in)
		want.URL = in
		if !ok || got != want {
			t.Errorf("%s: got %+v %v", in, got, ok)
		}
	}
	for _, in := range []string{"/local/file.csv", "http://x/y", "s3://", "s3:///key", "abfss://nohost/x", "file.csv"} {
		if _, ok := ParseLocation(in); ok {
			t.Errorf("%s parsed", in)
		}
	}
}

func TestMatchKey(t *testing.T) {
	cases := []struct {
		pat, key string
		want     bool
	}{
		{"data/*.csv", "data/a.csv", true},
		{"data/*.csv", "data/sub/a.csv", false},
		{"data/**/*.csv", "data/a.csv", true},
		{"data/**/*.csv", "data/x=1/y=2/a.csv", true},
		{"data/**", "data/x/y", true},
		{"data/f?.csv", "data/f1.csv", true},
		{"data/f[0-2].csv", "data/f3.csv", false},
		{"987_2025-08*.csv", "987_2025-08-01.csv", true},
		{"a.csv", "a.csv", true},
		{"a.csv", "a.csvx", false},
	}
	for _, c := range cases {
		if got := matchKey(c.pat, c.key); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pat, c.key, got)
		}
	}
	if l, _ := ParseLocation("s3://b/data/x=1/*.csv"); l.Prefix() != "data/x=1/" || !l.IsGlob() {
		t.Errorf("prefix %q", l.Prefix())
	}
}
