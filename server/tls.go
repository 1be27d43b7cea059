//go:build duckdb_arrow

package server

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/lunadb/luna/wire"
)

// tlsRecordHandshake starts every TLS ClientHello (a handshake record); no
// request of the plain protocol starts with it.
const tlsRecordHandshake = 0x16

// defaultHandshakeTimeout bounds the first byte and the TLS handshake when
// there is no --auth-timeout.
const defaultHandshakeTimeout = 10 * time.Second

// RequireTLSMessage answers a plain connection under Options.RequireTLS.
const RequireTLSMessage = "TLS required: this server accepts only TLS connections (--require-tls)"

// negotiate sniffs the first byte of a connection when TLS is configured:
// a TLS ClientHello gets a handshake, and the session then speaks through
// it; anything else is the plain protocol, the byte replayed. It returns
// where requests are to be read from, or false when the connection is to
// close.
func (s *Server) negotiate(ss *session) (io.Reader, bool) {
	cfg := s.opts.TLS
	if cfg == nil {
		return ss.nc, true
	}
	raw := ss.nc
	timeout := s.opts.AuthTimeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	if err := raw.SetReadDeadline(deadline); err != nil {
		ss.log.Debug("set handshake deadline", "err", err)
		return nil, false
	}
	var first [1]byte
	if _, err := io.ReadFull(raw, first[:]); err != nil {
		// Health probes and port scanners connect and leave.
		ss.log.Debug("connection closed before its first byte", "err", err)
		return nil, false
	}
	pc := &prefixConn{Conn: raw, first: first[:]}
	if first[0] != tlsRecordHandshake {
		if s.opts.RequireTLS {
			ss.log.Warn("plain connection refused (--require-tls)")
			ss.status("", RequireTLSMessage)
			if ss.flush() == nil {
				lingerClose(raw)
			}
			return nil, false
		}
		if err := raw.SetReadDeadline(time.Time{}); err != nil {
			return nil, false
		}
		return pc, true
	}

	tc := tls.Server(pc, cfg)
	if err := tc.SetDeadline(deadline); err != nil {
		return nil, false
	}
	if err := tc.HandshakeContext(ss.ctx); err != nil {
		if isGone(err) {
			ss.log.Debug("TLS handshake abandoned", "err", err)
		} else {
			ss.log.Warn("TLS handshake failed", "err", err)
		}
		return nil, false
	}
	if err := tc.SetDeadline(time.Time{}); err != nil {
		return nil, false
	}
	state := tc.ConnectionState()
	s.mu.Lock()
	ss.nc = tc
	ss.tls = &state
	s.mu.Unlock()
	ss.bw = wire.NewWriter(tc)
	ss.log.Debug("TLS handshake done", "version", tls.VersionName(state.Version),
		"cipher", tls.CipherSuiteName(state.CipherSuite), "client_certificate", len(state.PeerCertificates) > 0)
	return tc, true
}

// isGone reports a handshake that ended because the client left or took
// too long, rather than one refused for its content.
func isGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)
}

// lingerClose ends the sending side, then reads what the client sent
// until it closes its own (briefly and boundedly): closing a socket with
// unread input resets the connection, which can discard the answer
// before the client has read it.
func lingerClose(nc net.Conn) {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if nc.SetReadDeadline(time.Now().Add(time.Second)) != nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
}

// prefixConn replays bytes already read from its connection.
type prefixConn struct {
	net.Conn
	first []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// certificateUser authenticates ss as the user its verified client
// certificate names (--tls-client-cert-user): the subject's common name,
// else the first DNS or email SAN that is a user. A certificate naming
// none leaves the session to AUTH as usual. It reports false only when ss
// was dropped meanwhile.
func (s *Server) certificateUser(ss *session) bool {
	if ss.tls == nil || len(ss.tls.VerifiedChains) == 0 || s.opts.Users == nil {
		return true
	}
	leaf := ss.tls.VerifiedChains[0][0]
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	names = append(names, leaf.EmailAddresses...)
	for _, name := range names {
		role, ok := s.opts.Users.Lookup(name)
		if name == "" || !ok {
			continue
		}
		if !s.authenticated(ss, name, role) {
			return false
		}
		ss.authed = true
		ss.live.setState(stateIdle)
		ss.log.Debug("authenticated by client certificate", "user", name, "role", role.String())
		return true
	}
	ss.log.Debug("client certificate names no user; AUTH needed", "subject", leaf.Subject.CommonName)
	return true
}
