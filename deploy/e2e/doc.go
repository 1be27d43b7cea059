// Package e2e tests luna-deploy's SSH side (log tailing, rolling restarts)
// against real OpenSSH servers: copies of the Debian appliance root file
// system booted with systemd-nspawn, each running sshd and Luna under
// systemd. The containers share the host's network; each one listens on a
// loopback address of its own (127.x.y.z) on the fleet's ports, as cloud
// nodes do, and a fleet can stand behind HAProxy health-checking /readyz
// like a cloud load balancer.
package e2e
