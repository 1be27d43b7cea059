// Package systemd holds Luna's systemd unit (luna.service), its environment
// file (luna.env), and the tests that check them: the unit verifies and
// scores well in systemd-analyze, scripts/install.sh lays the files out, and
// the appliance test boots a Debian root file system under a real systemd
// (systemd-nspawn) to run the built server as the service: readiness after
// the startup SQL, the watchdog, a clean stop and journald logs.
//
// The tests need root and the tools of scripts/test-deps.sh (make tools);
// they build the server themselves. Run them with make test, or alone:
//
//	go test -tags=duckdb_arrow ./systemd/
//
// The first run builds the Debian root file system (scripts/appliance-rootfs.sh,
// a minute or two) into ${LUNA_CACHE:-~/.cache/luna}; later runs reuse it.
package systemd
