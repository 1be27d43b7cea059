package remote

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/lunadb/luna/server/sqlerror"
	"github.com/lunadb/luna/server/sqltext"
)

// Secret is a CREATE SECRET for one of the clouds Luna reaches itself.
type Secret struct {
	Name     string
	Type     string // s3, gcs, r2 or azure
	Provider string // config or credential_chain
	Scope    []string
	Options  map[string]string // upper-case option names, as DuckDB spells them
	// Persistent secrets are stored under the secret directory and loaded
	// again at startup, as DuckDB's are.
	Persistent bool `json:",omitempty"`
}

// secretTypes are the secret types Luna handles, with their default
// scopes as DuckDB has them.
var secretTypes = map[string][]string{
	"s3":    {"s3://", "s3n://", "s3a://"},
	"r2":    {"r2://"},
	"gcs":   {"gs://", "gcs://"},
	"azure": {"az://", "azure://", "abfss://"},
}

// sensitive options never leave the server.
var sensitive = map[string]bool{"SECRET": true, "SESSION_TOKEN": true, "CONNECTION_STRING": true, "ACCOUNT_KEY": true, "CLIENT_SECRET": true}

// knownOptions are the options DuckDB's secret types take; others are an
// error, as in DuckDB.
var knownOptions = map[string]bool{
	"TYPE": true, "PROVIDER": true, "SCOPE": true, "KEY_ID": true, "SECRET": true, "SESSION_TOKEN": true,
	"REGION": true, "ENDPOINT": true, "URL_STYLE": true, "USE_SSL": true, "ACCOUNT_ID": true,
	"CONNECTION_STRING": true, "ACCOUNT_NAME": true, "CHAIN": true, "URL_COMPATIBILITY_MODE": true,
	"KMS_KEY_ID": true, "REFRESH": true, "VALIDATION": true,
}

// Secrets is the set of secrets, shared by every session as DuckDB's
// secret manager is.
type Secrets struct {
	mu  sync.Mutex
	m   map[string]*Secret
	dir string // where persistent secrets live; empty: none can be made
}

// secretStatement is a parsed CREATE or DROP SECRET.
type secretStatement struct {
	drop      bool
	replace   bool
	ifExists  bool // DROP … IF EXISTS
	ifNotExst bool // CREATE … IF NOT EXISTS
	secret    Secret
}

// parseSecretStatement recognizes CREATE/DROP SECRET statements for the
// types Luna handles. ok is false for any other statement, which then goes
// to DuckDB as it is (secrets of other types included).
func parseSecretStatement(toks []sqltext.Token) (st secretStatement, ok bool, err error) {
	i := 0
	next := func(w string) bool {
		if i < len(toks) && toks[i].IsWord(w) {
			i++
			return true
		}
		return false
	}
	switch {
	case next("CREATE"):
		if next("OR") {
			if !next("REPLACE") {
				return st, false, nil
			}
			st.replace = true
		}
	case next("DROP"):
		st.drop = true
	default:
		return st, false, nil
	}
	persistent := false
	if next("PERSISTENT") {
		persistent = true
	} else {
		next("TEMPORARY")
		next("TEMP")
	}
	if !next("SECRET") {
		return st, false, nil
	}
	if st.drop {
		if next("IF") {
			if !next("EXISTS") {
				return st, false, nil
			}
			st.ifExists = true
		}
		if i >= len(toks) || (toks[i].Kind != sqltext.Word && toks[i].Kind != sqltext.Ident) {
			return st, false, nil
		}
		st.secret.Name = toks[i].Value
		if i+1 < len(toks) && !(toks[i+1].Kind == sqltext.Symbol && toks[i+1].Value == ";") {
			return st, false, nil
		}
		return st, true, nil
	}
	if next("IF") {
		if !next("NOT") || !next("EXISTS") {
			return st, false, nil
		}
		st.ifNotExst = true
	}
	if i < len(toks) && (toks[i].Kind == sqltext.Word || toks[i].Kind == sqltext.Ident) {
		st.secret.Name = toks[i].Value
		i++
	}
	if i >= len(toks) || toks[i].Value != "(" || toks[i].Kind != sqltext.Symbol {
		return st, false, nil
	}
	opts, err := parseOptions(toks[i+1:])
	if err != nil {
		return st, true, err
	}
	typ := strings.ToLower(opts["TYPE"])
	if _, handled := secretTypes[typ]; !handled {
		return st, false, nil // DuckDB's own, or an error DuckDB words
	}
	for k := range opts {
		if !knownOptions[k] {
			return st, true, sqlerror.Errorf(sqlerror.InvalidInput, "Unknown named parameter passed to CREATE SECRET: %s", strings.ToLower(k))
		}
	}
	s := Secret{Name: st.secret.Name, Type: typ, Provider: strings.ToLower(opts["PROVIDER"]), Options: map[string]string{}, Persistent: persistent}
	if s.Name == "" {
		s.Name = "__default_" + typ
	}
	if s.Provider == "" {
		s.Provider = "config"
	}
	if s.Provider != "config" && s.Provider != "credential_chain" {
		return st, true, sqlerror.Errorf(sqlerror.InvalidInput, "Secret provider '%s' not found for type '%s'", s.Provider, typ)
	}
	if sc, ok := opts["SCOPE"]; ok {
		s.Scope = strings.Split(sc, "\x00")
	} else {
		s.Scope = secretTypes[typ]
	}
	for k, v := range opts {
		if k != "TYPE" && k != "PROVIDER" && k != "SCOPE" {
			s.Options[k] = v
		}
	}
	st.secret = s
	return st, true, nil
}

// parseOptions reads "KEY value, KEY value )" where a value is a string,
// a word, or a [list] of strings (joined with NUL).
func parseOptions(toks []sqltext.Token) (map[string]string, error) {
	opts := map[string]string{}
	i := 0
	for i < len(toks) {
		if toks[i].Kind == sqltext.Symbol && toks[i].Value == ")" {
			return opts, nil
		}
		if toks[i].Kind != sqltext.Word {
			return nil, sqlerror.Errorf(sqlerror.Parser, "syntax error at or near %q in CREATE SECRET", toks[i].Value)
		}
		key := strings.ToUpper(toks[i].Value)
		i++
		if i >= len(toks) {
			break
		}
		var val string
		switch t := toks[i]; {
		case t.Kind == sqltext.Symbol && t.Value == "[":
			var items []string
			for i++; i < len(toks) && !(toks[i].Kind == sqltext.Symbol && toks[i].Value == "]"); i++ {
				if toks[i].Kind == sqltext.String {
					items = append(items, toks[i].Value)
				}
			}
			val = strings.Join(items, "\x00")
		case t.Kind == sqltext.String || t.Kind == sqltext.Word || t.Kind == sqltext.Ident:
			val = t.Value
		default:
			return nil, sqlerror.Errorf(sqlerror.Parser, "syntax error at or near %q in CREATE SECRET", t.Value)
		}
		if _, dup := opts[key]; dup {
			return nil, sqlerror.Errorf(sqlerror.Binder, "Duplicate named parameter %q in CREATE SECRET", strings.ToLower(key))
		}
		opts[key] = val
		i++
		if i < len(toks) && toks[i].Kind == sqltext.Symbol && toks[i].Value == "," {
			i++
		}
	}
	return nil, sqlerror.Errorf(sqlerror.Parser, "syntax error at end of input in CREATE SECRET")
}

// apply carries out a CREATE or DROP SECRET.
func (s *Secrets) apply(st secretStatement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := st.secret.Name
	if st.drop {
		if _, ok := s.m[name]; !ok {
			if st.ifExists {
				return nil
			}
			return sqlerror.Errorf(sqlerror.InvalidInput, "Failed to remove non-existent secret with name '%s'", name)
		}
		if s.m[name].Persistent {
			if err := s.unstore(name); err != nil {
				return err
			}
		}
		delete(s.m, name)
		return nil
	}
	if _, ok := s.m[name]; ok && !st.replace {
		if st.ifNotExst {
			return nil
		}
		return sqlerror.Errorf(sqlerror.InvalidInput, "Temporary secret with name '%s' already exists!", name)
	}
	sec := st.secret
	if sec.Persistent {
		if err := s.store(&sec); err != nil {
			return err
		}
	} else if old, ok := s.m[name]; ok && old.Persistent {
		// Replaced by a temporary secret: it must not come back at the
		// next start.
		if err := s.unstore(name); err != nil {
			return err
		}
	}
	s.m[name] = &sec
	return nil
}

// lookup returns the secret whose scope is the longest prefix of url
// among secrets of the types that serve the scheme, as DuckDB chooses.
func (s *Secrets) lookup(url string, scheme Scheme) *Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Secret
	bestLen := -1
	for _, sec := range s.m {
		if !servesScheme(sec.Type, scheme) {
			continue
		}
		for _, sc := range sec.Scope {
			if strings.HasPrefix(url, sc) && len(sc) > bestLen {
				best, bestLen = sec, len(sc)
			}
		}
	}
	return best
}

func servesScheme(typ string, scheme Scheme) bool {
	switch scheme {
	case S3:
		return typ == "s3"
	case R2:
		return typ == "r2"
	case GCS:
		return typ == "gcs"
	case Azure:
		return typ == "azure"
	}
	return false
}

// listing returns the duckdb_secrets() rows: name, type, provider,
// persistent, storage, scope and the redacted secret string.
func (s *Secrets) listing() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.m))
	for n := range s.m {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows [][]string
	for _, n := range names {
		sec := s.m[n]
		keys := make([]string, 0, len(sec.Options))
		for k := range sec.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := []string{"name=" + sec.Name, "type=" + sec.Type, "provider=" + sec.Provider, "serializable=true", "scope=" + strings.Join(sec.Scope, ",")}
		for _, k := range keys {
			v := sec.Options[k]
			if sensitive[k] {
				v = "redacted"
			}
			parts = append(parts, strings.ToLower(k)+"="+v)
		}
		rows = append(rows, []string{sec.Name, sec.Type, sec.Provider, strings.Join(sec.Scope, "\x00"), strings.Join(parts, ";"), fmt.Sprint(sec.Persistent)})
	}
	return rows
}

// listingSQL is a subquery with the same columns as DuckDB's
// duckdb_secrets(), listing Luna's secrets.
func (s *Secrets) listingSQL() string {
	const cols = "name, type, provider, persistent, storage, scope, secret_string"
	rows := s.listing()
	if len(rows) == 0 {
		return "(SELECT NULL::VARCHAR AS name, NULL::VARCHAR AS type, NULL::VARCHAR AS provider, NULL::BOOLEAN AS persistent, NULL::VARCHAR AS storage, NULL::VARCHAR[] AS scope, NULL::VARCHAR AS secret_string WHERE false)"
	}
	var b strings.Builder
	b.WriteString("(SELECT * FROM (VALUES ")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		scopes := strings.Split(r[3], "\x00")
		for j := range scopes {
			scopes[j] = sqltext.Quote(scopes[j])
		}
		persistent, storage := "false", "'memory'"
		if r[5] == "true" {
			persistent, storage = "true", "'local_file'"
		}
		fmt.Fprintf(&b, "(%s, %s, %s, %s, %s, [%s]::VARCHAR[], %s)",
			sqltext.Quote(r[0]), sqltext.Quote(r[1]), sqltext.Quote(r[2]), persistent, storage, strings.Join(scopes, ", "), sqltext.Quote(r[4]))
	}
	b.WriteString(") AS luna_secrets(" + cols + "))")
	return b.String()
}
