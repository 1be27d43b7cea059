package config

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	d.FromEnv = map[string]bool{}
	if !reflect.DeepEqual(c, d) || c.APIHostPort != "0.0.0.0:7688" || c.MaxRequestBytes != 64<<20 {
		t.Fatalf("got %+v", c)
	}
}

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	c, err := Parse([]string{"--threads", "3", "--max-request-bytes=1MiB"},
		env(map[string]string{"LUNA_THREADS": "9", "LUNA_QUERY_TIMEOUT": "5s", "LUNA_PASSWD": "pw", "LUNA_MAX_REQUEST_BYTES": "2MiB"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Threads != 3 || c.QueryTimeout != 5*time.Second || c.Passwd != "pw" || c.MaxRequestBytes != 1<<20 {
		t.Fatalf("got %+v", c)
	}
}

func TestBadValuesNameTheFlagOrVariable(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--threads=x"}, nil, "-threads"},
		{[]string{"--max-connections=-1"}, nil, "--max-connections"},
		{[]string{"--api-host-port=nohost"}, nil, "--api-host-port"},
		{[]string{"--api-host-port=:70000"}, nil, "--api-host-port"},
		{[]string{"--memory-limit=4 parsecs"}, nil, "--memory-limit"},
		{[]string{"--max-temp-dir-size=big"}, nil, "--max-temp-dir-size"},
		{[]string{"--max-request-bytes=1.5GB"}, nil, "-max-request-bytes"},
		{[]string{"--max-request-bytes=99999999999G"}, nil, "out of range"},
		{[]string{"--batch-rows=0"}, nil, "--batch-rows"},
		{[]string{"--log-level=trace"}, nil, "--log-level"},
		{[]string{"--log-format=yaml"}, nil, "--log-format"},
		{[]string{"--query-timeout=-1s"}, nil, "--query-timeout"},
		{[]string{"--auth-timeout=-1s"}, nil, "--auth-timeout"},
		{[]string{"--auth-timeout=ten"}, nil, "-auth-timeout"},
		{[]string{"--idle-timeout=-5m"}, nil, "--idle-timeout"},
		{[]string{"--write-timeout=-1s"}, nil, "--write-timeout"},
		{[]string{"--max-unauthenticated-connections=-1"}, nil, "--max-unauthenticated-connections"},
		{nil, map[string]string{"LUNA_IDLE_TIMEOUT": "15"}, "LUNA_IDLE_TIMEOUT"},
		{[]string{"--allowed-directories=/var/lib/luna,,/srv"}, nil, "-allowed-directories"},
		{[]string{"--allowed-directories=data"}, nil, "--allowed-directories"},
		{nil, map[string]string{"LUNA_ALLOWED_DIRECTORIES": "/srv,relative"}, "--allowed-directories"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--watch-interval=-5m"}, nil, "--watch-interval"},
		{[]string{"--users-file=/etc/luna/users", "--users-from=aws-ssm:/luna/users"}, nil, "--users-from: cannot be combined with --users-file"},
		{[]string{"--users-file=/etc/luna/users"}, map[string]string{"LUNA_USERS_FROM": "aws-ssm:/luna/users"}, "cannot be combined"},
		{[]string{"--watch-interval=5 minutes"}, nil, "-watch-interval"},
		{[]string{"--watch-interval=1m", "--object-store=duckdb"}, nil, "needs --object-store native"},
		{nil, map[string]string{"LUNA_THREADS": "two"}, "LUNA_THREADS (--threads)"},
		{nil, map[string]string{"LUNA_SHUTDOWN_TIMEOUT": "10"}, "LUNA_SHUTDOWN_TIMEOUT"},
		{[]string{"--max-concurrent-queries=-1"}, nil, "--max-concurrent-queries: must not be negative"},
		{[]string{"--max-concurrent-queries=four"}, nil, "-max-concurrent-queries"},
		{[]string{"--max-concurrent-queries=2.5"}, nil, "-max-concurrent-queries"},
		{[]string{"--max-concurrent-queries="}, nil, "-max-concurrent-queries"},
		{nil, map[string]string{"LUNA_MAX_CONCURRENT_QUERIES": "lots"}, "LUNA_MAX_CONCURRENT_QUERIES (--max-concurrent-queries)"},
		{nil, map[string]string{"LUNA_MAX_CONCURRENT_QUERIES": "-3"}, "--max-concurrent-queries: must not be negative"},
	}
	for _, c := range cases {
		_, err := Parse(c.args, env(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want one naming %q", c.args, c.env, err, c.want)
		}
	}
}

func TestInitSQLPaths(t *testing.T) {
	c, err := Parse([]string{"--init-sql", "/a.sql", "--init-sql=/b:/c"}, env(nil), io.Discard)
	if err != nil || !reflect.DeepEqual([]string(c.InitSQL), []string{"/a.sql", "/b", "/c"}) {
		t.Fatalf("%v %v", c.InitSQL, err)
	}
	c, err = Parse(nil, env(map[string]string{"LUNA_INIT_SQL": "/etc/luna/init.d:/x.sql", "LUNA_PASSWD": "p"}), io.Discard)
	if err != nil || len(c.InitSQL) != 2 || !c.FromEnv["passwd"] || c.FromEnv["init-sql"] != true {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range [][]string{{"--init-sql", "a::b"}, {"--init-sql-on-error", "ignore"}, {"--health-host-port", "7689"}, {"--health-probe-timeout", "0s"}, {"--health-probe-sql", " "}} {
		if _, err := Parse(bad, env(nil), io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestHelpHidesPassword(t *testing.T) {
	var out strings.Builder
	_, err := Parse([]string{"--help"}, env(map[string]string{"LUNA_PASSWD": "hunter2"}), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "LUNA_API_HOST_PORT") || strings.Contains(out.String(), "hunter2") {
		t.Fatalf("help:\n%s", out.String())
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "65536": 65536, "64KiB": 64 << 10, "64MiB": 64 << 20, "1GB": 1e9, "2 mib": 2 << 20, "3k": 3 << 10} {
		var b ByteSize
		if err := b.Set(in); err != nil || b != want {
			t.Errorf("%q: %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GB", "12PB", "1e6"} {
		var b ByteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
}

func TestAllowedDirectoriesAreCommaSeparated(t *testing.T) {
	c, err := Parse([]string{"--allowed-directories", "/var/lib/luna, /srv/data"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(c.AllowedDirectories), []string{"/var/lib/luna", "/srv/data"}) {
		t.Fatalf("got %q", c.AllowedDirectories)
	}
}

func TestMaxConcurrentQueries(t *testing.T) {
	if d := Defaults().MaxConcurrentQueries; d != 0 {
		t.Fatalf("default = %d, want 0 (no limit)", d)
	}
	c, err := Parse([]string{"--max-concurrent-queries", "4"}, env(map[string]string{"LUNA_MAX_CONCURRENT_QUERIES": "9"}), io.Discard)
	if err != nil || c.MaxConcurrentQueries != 4 {
		t.Fatalf("flag: %d, %v; want 4", c.MaxConcurrentQueries, err)
	}
	c, err = Parse(nil, env(map[string]string{"LUNA_MAX_CONCURRENT_QUERIES": "2"}), io.Discard)
	if err != nil || c.MaxConcurrentQueries != 2 || !c.FromEnv["max-concurrent-queries"] {
		t.Fatalf("env: %d, %v; want 2 from the environment", c.MaxConcurrentQueries, err)
	}
}

func TestDerivedDirectories(t *testing.T) {
	for _, c := range []struct {
		cache, home      string
		wantCache, wantS string
	}{
		{"", "", "", ""},
		{"", "/var/lib/luna", "/var/lib/luna/object-cache", "/var/lib/luna/stored_secrets"},
		{"/cache", "/var/lib/luna", "/cache", "/var/lib/luna/stored_secrets"},
		{"/cache", "", "/cache", ""},
	} {
		cfg := Config{ObjectCacheDir: c.cache, DBHomeDir: c.home}
		if got := cfg.CacheDir(); got != c.wantCache {
			t.Errorf("%+v: CacheDir %q, want %q", c, got, c.wantCache)
		}
		if got := cfg.SecretDir(); got != c.wantS {
			t.Errorf("%+v: SecretDir %q, want %q", c, got, c.wantS)
		}
	}
}
