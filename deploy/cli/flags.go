package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lunadb/luna/deploy"
)

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// mapFlag collects repeatable KEY=VALUE pairs.
type mapFlag map[string]string

func (m mapFlag) String() string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (m mapFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	m[k] = val
	return nil
}

// int32Flag is an int32 flag with a default.
type int32Flag struct{ p *int32 }

func (f *int32Flag) bind(p *int32, def int32) *int32Flag { *p = def; f.p = p; return f }
func (f *int32Flag) String() string {
	if f == nil || f.p == nil {
		return "0"
	}
	return fmt.Sprint(*f.p)
}
func (f *int32Flag) Set(v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	*f.p = int32(n)
	return nil
}

// secondsFlag is a whole number of seconds, given as a duration ("10m",
// "90s") or a bare number of seconds ("600").
type secondsFlag struct{ p *int32 }

func (f *secondsFlag) bind(p *int32, def int32) *secondsFlag { *p = def; f.p = p; return f }

func (f *secondsFlag) String() string {
	if f == nil || f.p == nil {
		return "0s"
	}
	return (time.Duration(*f.p) * time.Second).String()
}

func (f *secondsFlag) Set(v string) error {
	s := strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 10m, 90s, or 600 for seconds)", v)
	}
	switch {
	case d < 0:
		return fmt.Errorf("%q must not be negative", v)
	case d%time.Second != 0:
		return fmt.Errorf("%q is not a whole number of seconds", v)
	case d > 1000*time.Hour:
		return fmt.Errorf("%q is too long", v)
	}
	*f.p = int32(d / time.Second)
	return nil
}

// amountFlag is a deploy.Amount: "3" instances or "50%" of the group.
// With optional set, it has no default to show until it is given.
type amountFlag struct {
	p        *deploy.Amount
	optional bool
	given    bool
}

func (f *amountFlag) bind(p *deploy.Amount, def deploy.Amount) *amountFlag {
	*p = def
	f.p = p
	return f
}

func (f *amountFlag) String() string {
	if f == nil || f.p == nil || f.optional && !f.given {
		return ""
	}
	return f.p.String()
}

func (f *amountFlag) Set(v string) error {
	a, err := deploy.ParseAmount(v)
	if err != nil {
		return err
	}
	*f.p, f.given = a, true
	return nil
}

// percentsFlag is a comma-separated list of percentages, or "none".
type percentsFlag struct{ p *[]int32 }

func (f *percentsFlag) bind(p *[]int32, def []int32) *percentsFlag {
	*p = append([]int32(nil), def...)
	f.p = p
	return f
}

func (f *percentsFlag) String() string {
	if f == nil || f.p == nil {
		return ""
	}
	if len(*f.p) == 0 {
		return "none"
	}
	var s []string
	for _, n := range *f.p {
		s = append(s, strconv.Itoa(int(n)))
	}
	return strings.Join(s, ",")
}

func (f *percentsFlag) Set(v string) error {
	*f.p = nil
	if strings.TrimSpace(v) == "none" {
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(s), "%"), 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a list of percentages such as 50,100 (or none)", v)
		}
		*f.p = append(*f.p, int32(n))
	}
	return nil
}
