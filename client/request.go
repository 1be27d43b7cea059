package client

import "github.com/lunadb/luna/wire"

// Request prefixes selecting how the server runs a statement.
const (
	PrefixExec  = wire.PrefixExec  // run statements, answer with a status table
	PrefixQuery = wire.PrefixQuery // run a query, answer with its result set
)

// AppendRequest appends the framing of one command to dst and returns the
// extended slice: "$<len>\r\n<prefix><stmt>\r\n", where len is the byte
// length of prefix+stmt. The statement may contain any bytes, including CR
// and LF, because the server reads it by length.
func AppendRequest(dst []byte, prefix, stmt string) []byte {
	return wire.AppendRequest(dst, prefix, stmt)
}

// AppendAuth appends an "AUTH <password>\r\n" line to dst. The line is not
// length-prefixed, so the password must not contain CR or LF; Dial and
// Conn.Auth refuse such passwords.
func AppendAuth(dst []byte, password string) []byte {
	return wire.AppendAuth(dst, password)
}
