package remote

import (
	"context"
	"testing"
)

// Replacing a secret's provider must not reuse the client built for the
// old one: with credential_chain that client signs with the machine's
// credentials, which the keyless replacement must never send.
func TestReplacedProviderGetsANewClient(t *testing.T) {
	b := newMemBucket()
	b.put("data/a.csv", "x\n1\n")
	r, used := newTestResolver(t, b, 0)
	ctx := context.Background()
	for _, stmt := range []string{
		"CREATE OR REPLACE SECRET p (TYPE s3, PROVIDER credential_chain, ENDPOINT 'partner.example:9000', SCOPE 's3://public')",
		"CREATE OR REPLACE SECRET p (TYPE s3, ENDPOINT 'partner.example:9000', SCOPE 's3://public')",
	} {
		s, err := r.Prepare(ctx, stmt)
		if err != nil {
			t.Fatal(err)
		}
		s.Finish(ctx, true)
		s, err = r.Prepare(ctx, "SELECT * FROM 's3://public/data/a.csv'")
		if err != nil {
			t.Fatal(err)
		}
		s.Finish(ctx, true)
	}
	if len(*used) != 2 {
		t.Fatalf("opened %d clients for two providers, want 2", len(*used))
	}
	if (*used)[0].Provider == (*used)[1].Provider {
		t.Fatalf("both clients for provider %q", (*used)[0].Provider)
	}
}
