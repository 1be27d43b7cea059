// Package config holds the server's settings: every command-line flag, its
// LUNA_<NAME> environment variable and default, and their validation.
//
// A flag given on the command line wins over its environment variable,
// which wins over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lunadb/luna/wire"
)

// Config is the parsed server configuration.
type Config struct {
	APIHostPort     string
	Passwd          string
	DBHomeDir       string
	MemoryLimit     string
	Threads         int
	TempDir         string
	MaxTempDirSize  string
	MaxRequestBytes ByteSize
	MaxConnections  int
	QueryTimeout    time.Duration
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration
	BatchRows       int
	LogLevel        string
	LogFormat       string
	Version         bool

	// QueryLog is off, errors or all: which requests get a query-log
	// line; QueryLogStatementLength cuts their statement text.
	QueryLog                string
	QueryLogStatementLength int

	// MaxConcurrentQueries caps statements running at once (0: no cap).
	MaxConcurrentQueries int

	// Connection deadlines and the cap on connections still to AUTH.
	AuthTimeout        time.Duration
	IdleTimeout        time.Duration
	WriteTimeout       time.Duration
	MaxUnauthenticated int

	PasswdFile      string
	PasswdFrom      string
	PasswdTimeout   time.Duration
	InitSQL         PathList
	InitSQLOnError  string
	HealthHostPort  string
	HealthProbeSQL  string
	HealthProbeWait time.Duration

	ObjectStore         string
	ObjectCacheDir      string
	ObjectCacheMaxBytes ByteSize
	WatchInterval       time.Duration

	// AllowedDirectories locks local file access to these directories.
	AllowedDirectories DirList

	// MemoryCompression is on or off: compressed in-memory tables.
	MemoryCompression string

	// TLS on the API port: certificate and key files, the CA of client
	// certificates (mutual TLS), and whether plain connections are refused.
	TLSCertFile     string
	TLSKeyFile      string
	TLSClientCAFile string
	RequireTLS      bool
	// TLSClientCertUser: a verified client certificate naming a user
	// authenticates as that user, without AUTH.
	TLSClientCertUser bool

	// UsersFile and UsersFrom name the users file: a path, or a
	// --passwd-from style source. At most one is set.
	UsersFile string
	UsersFrom string

	// FromEnv names the flags whose value came from the environment.
	FromEnv map[string]bool
}

// CacheDir is where downloaded objects are kept: --object-cache-dir, else
// object-cache under --db-home-dir. It is "" with neither, and the server
// then makes a fresh private temporary directory (a predictable name in a
// shared temporary directory could be made beforehand by another user).
func (c Config) CacheDir() string {
	switch {
	case c.ObjectCacheDir != "":
		return c.ObjectCacheDir
	case c.DBHomeDir != "":
		return filepath.Join(c.DBHomeDir, "object-cache")
	}
	return ""
}

// SecretDir is where Luna keeps persistent secrets for object URLs:
// stored_secrets under --db-home-dir; "" (none persist) without one.
func (c Config) SecretDir() string {
	if c.DBHomeDir == "" {
		return ""
	}
	return filepath.Join(c.DBHomeDir, "stored_secrets")
}

// Defaults returns the configuration with no flag or variable set.
func Defaults() Config {
	return Config{
		APIHostPort:     "0.0.0.0:7688",
		MaxRequestBytes: wire.DefaultMaxRequestBytes,
		ShutdownTimeout: 30 * time.Second,
		AuthTimeout:     10 * time.Second,
		WriteTimeout:    time.Minute,
		BatchRows:       wire.DefaultBatchRows,
		LogLevel:        "info",
		LogFormat:       "text",
		PasswdTimeout:   2 * time.Minute,
		InitSQLOnError:  "fail",
		HealthProbeSQL:  "SELECT 1",
		HealthProbeWait: 5 * time.Second,
		ObjectStore:     "native",

		MemoryCompression: "on",

		QueryLog:                "errors",
		QueryLogStatementLength: 200,
	}
}

// EnvName is the environment variable for a flag: LUNA_ and the name in
// upper case with dashes as underscores.
func EnvName(flagName string) string {
	return "LUNA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// secret flags never have their value printed, not even a default.
var secret = map[string]bool{"passwd": true}

// PathList is a repeatable flag of paths; one value may hold several
// separated by ':', as LUNA_INIT_SQL does.
type PathList []string

func (p *PathList) String() string { return strings.Join(*p, ":") }

// Set adds the paths in s.
func (p *PathList) Set(s string) error {
	for _, path := range strings.Split(s, ":") {
		if path == "" {
			return fmt.Errorf("empty path in %q", s)
		}
		*p = append(*p, path)
	}
	return nil
}

func (c *Config) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("luna", flag.ContinueOnError)
	fs.StringVar(&c.APIHostPort, "api-host-port", c.APIHostPort, "address the API listens on (host:port)")
	fs.StringVar(&c.Passwd, "passwd", c.Passwd, "password clients must send with AUTH (empty: no authentication)")
	fs.StringVar(&c.DBHomeDir, "db-home-dir", c.DBHomeDir, "DuckDB home directory (extensions, secrets)")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "DuckDB memory limit, e.g. 4GB or 80% (empty: DuckDB's default, 80% of RAM)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "DuckDB worker threads (0: one per core)")
	fs.StringVar(&c.TempDir, "temp-dir", c.TempDir, "directory where larger-than-memory work spills (empty: DuckDB's default)")
	fs.StringVar(&c.MaxTempDirSize, "max-temp-dir-size", c.MaxTempDirSize, "cap on spilled data, e.g. 100GB (empty: DuckDB's default)")
	fs.StringVar(&c.MemoryCompression, "memory-compression", c.MemoryCompression, "on: tables are stored compressed in memory, checkpointed after each change; off: stored uncompressed, as DuckDB leaves them")
	fs.Var(&c.MaxRequestBytes, "max-request-bytes", "largest request accepted, e.g. 64MiB; larger ones close the connection")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "most concurrent client connections; extra ones are refused with an error (0: no limit)")
	fs.DurationVar(&c.QueryTimeout, "query-timeout", c.QueryTimeout, "longest a request may run, e.g. 30s (0: no limit)")
	fs.IntVar(&c.MaxConcurrentQueries, "max-concurrent-queries", c.MaxConcurrentQueries, "most statements running in DuckDB at once across all connections; further ones wait their turn in a first-come queue, within --query-timeout (0: no limit)")
	fs.DurationVar(&c.AuthTimeout, "auth-timeout", c.AuthTimeout, "with a password or users, close a connection that has not completed AUTH within this (0: no limit)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close a connection that sends no request for this long after its last answer, e.g. 15m (0: never)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "close a connection whose client takes longer than this to accept each 1 MiB of a response (0: no limit)")
	fs.IntVar(&c.MaxUnauthenticated, "max-unauthenticated-connections", c.MaxUnauthenticated, "most connections still to complete AUTH; when full the oldest is dropped for a new one (0: half of --max-connections, at most 64)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long running requests may finish after SIGTERM before they are interrupted")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "after SIGTERM, answer /readyz with 503 but keep serving this long before draining, so a load balancer stops sending new connections first: its health-check interval × unhealthy threshold, plus one interval (0: drain at once)")
	fs.IntVar(&c.BatchRows, "batch-rows", c.BatchRows, "smallest Arrow record batch in query results: DuckDB chunks smaller than this (after filters, say) are joined; full 2,048-row chunks go out as they are")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.QueryLog, "query-log", c.QueryLog, "one log line per request (session, user, statement types, duration, rows, bytes, outcome, redacted statement), with log=query: off, errors (failed, denied or aborted requests only) or all; written whatever --log-level")
	fs.IntVar(&c.QueryLogStatementLength, "query-log-statement-length", c.QueryLogStatementLength, "characters of the statement text a query-log line shows, secret values redacted (0: none)")
	fs.BoolVar(&c.Version, "version", c.Version, "print the version and exit")
	fs.StringVar(&c.PasswdFile, "passwd-file", c.PasswdFile, "file holding the password (trailing newline trimmed); wins over LUNA_PASSWD")
	fs.StringVar(&c.PasswdFrom, "passwd-from", c.PasswdFrom, "fetch the password at startup: gcp-metadata:<attribute>, gcp-secretmanager:<secret>[/versions/<v>] (or projects/<p>/secrets/<secret>...), aws-imds:<tag>, aws-ssm:<parameter> or aws-secretsmanager:<secret-id>")
	fs.DurationVar(&c.PasswdTimeout, "passwd-timeout", c.PasswdTimeout, "how long --passwd-from and --users-from keep retrying a source that is not reachable yet")
	fs.StringVar(&c.UsersFile, "users-file", c.UsersFile, "users file, one NAME:BCRYPT-HASH:ROLE a line (read, write or admin), for AUTH <user> <password>; re-read when it changes and on SIGHUP (luna user add writes it)")
	fs.StringVar(&c.UsersFrom, "users-from", c.UsersFrom, "fetch the users file from a --passwd-from source (aws-ssm:, aws-secretsmanager:, gcp-secretmanager:, ...) at startup and on SIGHUP")
	fs.Var(&c.InitSQL, "init-sql", "SQL file, or directory whose *.sql files run in lexical order, to run before serving (repeatable; ':' separates several)")
	fs.StringVar(&c.InitSQLOnError, "init-sql-on-error", c.InitSQLOnError, "on a failing startup statement: fail (exit non-zero) or continue (log and go on)")
	fs.StringVar(&c.HealthHostPort, "health-host-port", c.HealthHostPort, "address of the HTTP side port with /healthz, /readyz and /metrics (empty: off)")
	fs.StringVar(&c.HealthProbeSQL, "health-probe-sql", c.HealthProbeSQL, "query the health probe runs; the systemd watchdog is fed only while it succeeds in time")
	fs.DurationVar(&c.HealthProbeWait, "health-probe-timeout", c.HealthProbeWait, "how long the health probe may take")
	fs.StringVar(&c.ObjectStore, "object-store", c.ObjectStore, "native: Luna reads s3://, gs://, az:// URLs and secrets itself; duckdb: pass them to DuckDB's own extensions")
	fs.StringVar(&c.ObjectCacheDir, "object-cache-dir", c.ObjectCacheDir, "local cache of downloaded objects (empty: object-cache under --db-home-dir, else under the system temp directory)")
	fs.Var(&c.ObjectCacheMaxBytes, "object-cache-max-bytes", "cap on the object cache, e.g. 50GiB; files no statement uses are evicted (0: no cap)")
	fs.DurationVar(&c.WatchInterval, "watch-interval", c.WatchInterval, "how often to list the objects startup-SQL tables were loaded from, re-running a CREATE TABLE whose sources changed, e.g. 5m (0: never)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "PEM certificate chain for TLS on the API port, which then serves TLS and plain connections alike; re-read when it changes and on SIGHUP (empty: plain only)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "PEM private key of --tls-cert-file (it may be the same file)")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca-file", c.TLSClientCAFile, "PEM CA certificates: every client must connect with TLS and present a certificate they sign (mutual TLS; implies --require-tls)")
	fs.BoolVar(&c.RequireTLS, "require-tls", c.RequireTLS, "refuse plain connections with an error: only TLS is served")
	fs.BoolVar(&c.TLSClientCertUser, "tls-client-cert-user", c.TLSClientCertUser, "with mutual TLS and users: a client certificate whose subject common name (else a DNS or email SAN) is a user authenticates as that user, no AUTH or password needed")
	fs.Var(&c.AllowedDirectories, "allowed-directories", "lock local file access (DuckDB's and Luna's own readers and writers) to these directories, comma-separated; Luna adds its object cache and temp directories, and no SET can change settings afterwards (empty: no lockdown)")
	return fs
}

// ErrHelp is returned by Parse when help was asked for; the usage has
// been written.
var ErrHelp = flag.ErrHelp

// Parse reads the configuration from args and the environment (getenv).
// Errors name the flag or variable at fault. Usage and errors go to out.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Defaults()
	fs := c.flagSet()
	fs.SetOutput(io.Discard) // errors are returned, not printed
	// The flag package prints usage on every error; only --help gets it.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, out)
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.FromEnv = map[string]bool{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		// --version is an action, not a setting: no variable triggers it.
		if err != nil || set[f.Name] || f.Name == "version" {
			return
		}
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				shown := v
				if secret[f.Name] {
					shown = "…"
				}
				err = fmt.Errorf("invalid value %q for %s (--%s): %v", shown, env, f.Name, e)
			}
			c.FromEnv[f.Name] = true
		}
	})
	if err != nil {
		return c, err
	}
	return c, c.validate()
}

var sizeRE = regexp.MustCompile(`(?i)^\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|k|m|g|t|%)?\s*$`)

func (c *Config) validate() error {
	var errs []error
	bad := func(flag string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.APIHostPort); err != nil {
		bad("api-host-port", "%q is not host:port: %v", c.APIHostPort, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("api-host-port", "%q has an invalid port", c.APIHostPort)
	}
	if c.MemoryLimit != "" && !sizeRE.MatchString(c.MemoryLimit) {
		bad("memory-limit", "%q is not a size such as 4GB or 80%%", c.MemoryLimit)
	}
	if c.MaxTempDirSize != "" && !sizeRE.MatchString(c.MaxTempDirSize) {
		bad("max-temp-dir-size", "%q is not a size such as 100GB", c.MaxTempDirSize)
	}
	if c.Threads < 0 {
		bad("threads", "must not be negative, got %d", c.Threads)
	}
	if c.MaxRequestBytes < 16 {
		bad("max-request-bytes", "must be at least 16 bytes, got %d", c.MaxRequestBytes)
	}
	if c.MaxConnections < 0 {
		bad("max-connections", "must not be negative, got %d", c.MaxConnections)
	}
	if c.QueryTimeout < 0 {
		bad("query-timeout", "must not be negative, got %v", c.QueryTimeout)
	}
	if c.MaxConcurrentQueries < 0 {
		bad("max-concurrent-queries", "must not be negative, got %d", c.MaxConcurrentQueries)
	}
	if c.AuthTimeout < 0 {
		bad("auth-timeout", "must not be negative, got %v", c.AuthTimeout)
	}
	if c.IdleTimeout < 0 {
		bad("idle-timeout", "must not be negative, got %v", c.IdleTimeout)
	}
	if c.WriteTimeout < 0 {
		bad("write-timeout", "must not be negative, got %v", c.WriteTimeout)
	}
	if c.MaxUnauthenticated < 0 {
		bad("max-unauthenticated-connections", "must not be negative, got %d", c.MaxUnauthenticated)
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown-timeout", "must not be negative, got %v", c.ShutdownTimeout)
	}
	if c.DrainDelay < 0 || c.DrainDelay > 10*time.Minute {
		bad("drain-delay", "must be between 0 and 10m, got %v", c.DrainDelay)
	}
	if c.BatchRows < 1 || c.BatchRows > 1<<24 {
		bad("batch-rows", "must be between 1 and %d, got %d", 1<<24, c.BatchRows)
	}
	if _, err := c.Level(); err != nil {
		bad("log-level", "%v", err)
	}
	if c.PasswdTimeout < 0 {
		bad("passwd-timeout", "must not be negative, got %v", c.PasswdTimeout)
	}
	if c.UsersFile != "" && c.UsersFrom != "" {
		bad("users-from", "cannot be combined with --users-file: give one of them")
	}
	if c.InitSQLOnError != "fail" && c.InitSQLOnError != "continue" {
		bad("init-sql-on-error", "must be fail or continue, got %q", c.InitSQLOnError)
	}
	if c.HealthHostPort != "" {
		if _, _, err := net.SplitHostPort(c.HealthHostPort); err != nil {
			bad("health-host-port", "%q is not host:port: %v", c.HealthHostPort, err)
		}
	}
	if strings.TrimSpace(c.HealthProbeSQL) == "" {
		bad("health-probe-sql", "must not be empty")
	}
	if c.HealthProbeWait <= 0 {
		bad("health-probe-timeout", "must be positive, got %v", c.HealthProbeWait)
	}
	if c.MemoryCompression != "on" && c.MemoryCompression != "off" {
		bad("memory-compression", "must be on or off, got %q", c.MemoryCompression)
	}
	if c.ObjectStore != "native" && c.ObjectStore != "duckdb" {
		bad("object-store", "must be native or duckdb, got %q", c.ObjectStore)
	}
	if c.WatchInterval < 0 {
		bad("watch-interval", "must not be negative, got %v", c.WatchInterval)
	}
	if c.WatchInterval > 0 && c.ObjectStore != "native" {
		bad("watch-interval", "needs --object-store native: with duckdb, Luna does not see which objects a table was loaded from")
	}
	if err := c.AllowedDirectories.validate(); err != nil {
		bad("allowed-directories", "%v", err)
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		bad("tls-cert-file", "needs --tls-key-file")
	case c.TLSKeyFile != "" && c.TLSCertFile == "":
		bad("tls-key-file", "needs --tls-cert-file")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		bad("tls-client-ca-file", "needs --tls-cert-file and --tls-key-file: mutual TLS is TLS")
	}
	if c.RequireTLS && c.TLSCertFile == "" {
		bad("require-tls", "needs --tls-cert-file and --tls-key-file")
	}
	if c.TLSClientCertUser && (c.TLSClientCAFile == "" || c.UsersFile == "" && c.UsersFrom == "") {
		bad("tls-client-cert-user", "needs --tls-client-ca-file (mutual TLS) and --users-file or --users-from")
	}
	if c.QueryLog != "off" && c.QueryLog != "errors" && c.QueryLog != "all" {
		bad("query-log", "must be off, errors or all, got %q", c.QueryLog)
	}
	if c.QueryLogStatementLength < 0 || c.QueryLogStatementLength > 1<<20 {
		bad("query-log-statement-length", "must be between 0 and %d, got %d", 1<<20, c.QueryLogStatementLength)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "must be text or json, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// Level is the parsed log level.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return l, fmt.Errorf("must be debug, info, warn or error, got %q", c.LogLevel)
	}
	return l, nil
}

// Logger builds the structured logger the configuration asks for.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	level, _ := c.Level()
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, "Usage: luna [flags]\n\nLuna serves an in-memory DuckDB database over TCP, answering in Arrow IPC.\nEvery flag can also be set by its environment variable; the command line wins.\n\nFlags:\n")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		f := fs.Lookup(n)
		def := f.DefValue
		switch {
		case secret[n] || def == "" || def == "0" || def == "0s" || def == "false":
			def = "none"
		}
		fmt.Fprintf(out, "  --%s\n        %s\n        (env %s, default %s)\n", n, f.Usage, EnvName(n), def)
	}
}

// ByteSize is a count of bytes written as a plain number or with a unit:
// 65536, 64KiB, 64MiB, 1GB.
type ByteSize int64

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
}

func (b *ByteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

// Set parses s.
func (b *ByteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i == 0 {
		return fmt.Errorf("%q is not a size such as 67108864 or 64MiB", s)
	}
	num, unit := s, ""
	if i > 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return fmt.Errorf("%q has an unknown unit %q", s, unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return fmt.Errorf("%q is out of range", s)
	}
	*b = ByteSize(n * mult)
	return nil
}
