package wire

import "strconv"

// Request prefixes selecting how the server runs a statement.
const (
	PrefixExec  = "x:" // run statements, answer with a status table
	PrefixQuery = "q:" // run a query, answer with its result set
)

// AppendRequest appends the framing of one command to dst and returns the
// extended slice: "$<len>\r\n<prefix><stmt>\r\n", where len is the byte
// length of prefix+stmt. The statement may contain any bytes, including CR
// and LF, because the server reads it by length.
func AppendRequest(dst []byte, prefix, stmt string) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(prefix)+len(stmt)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, prefix...)
	dst = append(dst, stmt...)
	return append(dst, "\r\n"...)
}

// AppendAuth appends an "AUTH <password>\r\n" line to dst. The line is not
// length-prefixed, so the password must not contain CR or LF.
func AppendAuth(dst []byte, password string) []byte {
	dst = append(dst, "AUTH "...)
	dst = append(dst, password...)
	return append(dst, "\r\n"...)
}
