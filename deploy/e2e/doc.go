// Package e2e tests luna-deploy's SSH side (log tailing, rolling restarts)
// against real OpenSSH servers: copies of the Debian appliance root file
// system booted with systemd-nspawn, each running sshd and Luna under
// systemd. The containers share the host's network, so each one's sshd,
// API and health ports are free loopback ports of their own.
package e2e
