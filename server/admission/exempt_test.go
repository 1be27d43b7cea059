package admission

import "testing"

func TestExempt(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"BEGIN", true},
		{"begin transaction;", true},
		{"START TRANSACTION", true},
		{"ROLLBACK", true},
		{"abort", true},
		{"SET threads = 2", true},
		{"SET memory_limit TO '4GB'", true},
		{"SET GLOBAL search_path = 'main,other'", true},
		{"RESET threads", true},
		{"  -- set up\n/* session */ SET TimeZone = 'UTC'; SET threads=1;", true},
		{"BEGIN; SET threads = 1; ROLLBACK", true},

		{"SELECT 1", false},
		{"COMMIT", false},
		{"END", false},
		{"START", false},
		{"BEGIN; SELECT count(*) FROM range(1000000000)", false},
		{"SET threads = 1; SELECT 42", false},
		{"SET VARIABLE x = (SELECT count(*) FROM big)", false},
		{"set variable x = 42", false},
		{"SET memory_limit = (SELECT '1GB')", false},
		{"SETUP", false},
		{"BEGINNING", false},
		{"ROLLBACK TO 'x'", false},
		{"/* SET x = 1 */ SELECT 1", false},
		{"-- SET x = 1\nSELECT 1", false},
		{"/* /* nested */ SET x = 1 */ SELECT 1", false},
		{"", false},
		{";;", false},
		{"-- only a comment", false},
	} {
		if got := Exempt(tc.sql); got != tc.want {
			t.Errorf("Exempt(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func BenchmarkExemptQuery(b *testing.B) {
	sql := "SELECT city, avg(tip) FROM trips GROUP BY city ORDER BY 2 DESC LIMIT 10"
	for b.Loop() {
		if Exempt(sql) {
			b.Fatal("exempt")
		}
	}
}
