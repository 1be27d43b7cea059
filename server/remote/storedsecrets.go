package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/lunadb/luna/server/sqlerror"
)

// Persistent secrets are one JSON file each in the secret directory,
// readable by the server's user only, like DuckDB's stored_secrets. They
// hold credentials in the clear, as DuckDB's do: the directory's
// permissions are what protects them.

const secretExt = ".secret.json"

// loadSecrets returns the secrets with the persistent ones of dir loaded.
// A file that cannot be read is logged, kept and skipped.
func loadSecrets(dir string, log *slog.Logger) (*Secrets, error) {
	s := &Secrets{m: map[string]*Secret{}, dir: dir}
	if dir == "" {
		return s, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the persistent secrets in %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), secretExt) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		var sec Secret
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &sec)
		}
		if err == nil && (sec.Name == "" || secretTypes[sec.Type] == nil) {
			err = errors.New("not a secret Luna wrote")
		}
		if err != nil {
			log.Error("skipping a persistent secret that cannot be read", "file", path, "err", err)
			continue
		}
		sec.Persistent = true
		s.m[sec.Name] = &sec
	}
	if len(s.m) > 0 {
		log.Info("persistent secrets loaded", "dir", dir, "secrets", len(s.m))
	}
	return s, nil
}

func (s *Secrets) secretPath(name string) string {
	return filepath.Join(s.dir, url.PathEscape(name)+secretExt)
}

// store writes sec to its file, replacing any earlier one in one rename.
func (s *Secrets) store(sec *Secret) error {
	if s.dir == "" {
		return sqlerror.Errorf(sqlerror.InvalidInput, "PERSISTENT secret %q needs a directory to live in: start Luna with --db-home-dir (secrets go to its stored_secrets folder)", sec.Name)
	}
	data, err := json.Marshal(sec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return sqlerror.Errorf(sqlerror.IO, "storing secret %q: %w", sec.Name, err)
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return sqlerror.Errorf(sqlerror.IO, "storing secret %q: %w", sec.Name, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.secretPath(sec.Name))
	}
	if err != nil {
		return sqlerror.Errorf(sqlerror.IO, "storing secret %q: %w", sec.Name, err)
	}
	return nil
}

// unstore removes a persistent secret's file.
func (s *Secrets) unstore(name string) error {
	if err := os.Remove(s.secretPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return sqlerror.Errorf(sqlerror.IO, "removing persistent secret %q: %w", name, err)
	}
	return nil
}
