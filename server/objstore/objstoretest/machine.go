package objstoretest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// The credentials a test's "machine" holds, for asserting that they are or
// are not sent.
const (
	MachineKeyID  = "AKIAMACHINEIDENTITY1"
	MachineSecret = "machine-secret-access-key"
	MachineToken  = "machine-session-token-do-not-send"
)

// MachineIdentity is an environment (KEY=VALUE entries) holding the
// credentials a cloud VM has: AWS keys with a session token, a Google
// service account whose token endpoint is googleTokens (so a token request
// would be seen there), and Azure service principal variables. Every
// instance metadata service is out of reach, so nothing reaches a cloud.
func MachineIdentity(t testing.TB, googleTokens string) []string {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "luna-test",
		"private_key_id": "machine-key-id",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		"client_email":   "vm@luna-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      "http://" + googleTokens + "/token",
	})
	saFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(saFile, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"AWS_ACCESS_KEY_ID=" + MachineKeyID,
		"AWS_SECRET_ACCESS_KEY=" + MachineSecret,
		"AWS_SESSION_TOKEN=" + MachineToken,
		"AWS_REGION=us-east-1",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_S3=",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=",
		"AWS_ROLE_ARN=",
		"GOOGLE_APPLICATION_CREDENTIALS=" + saFile,
		"GCE_METADATA_HOST=127.0.0.1:1",
		"STORAGE_EMULATOR_HOST=",
		"AZURE_TENANT_ID=00000000-0000-0000-0000-000000000001",
		"AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000002",
		"AZURE_CLIENT_SECRET=machine-client-secret",
	}
}
