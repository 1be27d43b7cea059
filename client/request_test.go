package client

import (
	"strings"
	"testing"
)

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		prefix, stmt, want string
	}{
		{PrefixQuery, "DESCRIBE tmpcur;", "$18\r\nq:DESCRIBE tmpcur;\r\n"},
		{PrefixExec, "", "$2\r\nx:\r\n"},
		// Lengths count bytes, not runes: "é" is 2 bytes, "😀" is 4.
		{PrefixQuery, "SELECT 'é😀'", "$17\r\nq:SELECT 'é😀'\r\n"},
		// CRLF and '$' inside the statement are plain data.
		{PrefixExec, "A;\r\n$5\r\nB", "$11\r\nx:A;\r\n$5\r\nB\r\n"},
	}
	for _, tt := range tests {
		got := string(AppendRequest(nil, tt.prefix, tt.stmt))
		if got != tt.want {
			t.Errorf("AppendRequest(%q, %q) = %q, want %q", tt.prefix, tt.stmt, got, tt.want)
		}
	}
}

func TestAppendRequestAppends(t *testing.T) {
	buf := AppendRequest([]byte("prev"), PrefixQuery, "ü")
	if got, want := string(buf), "prev$4\r\nq:ü\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	long := strings.Repeat("ß", 600) // 1200 bytes
	if got := string(AppendRequest(nil, PrefixQuery, long)); !strings.HasPrefix(got, "$1202\r\n") {
		t.Errorf("long statement framed as %q...", got[:10])
	}
}

func TestAppendAuth(t *testing.T) {
	if got, want := string(AppendAuth(nil, "s3cr€t")), "AUTH s3cr€t\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
