package passwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// loadAWSConfig resolves region, credentials and endpoints the way every AWS
// tool does: environment (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_SSM,
// AWS_EC2_METADATA_SERVICE_ENDPOINT, ...), then the shared config files, then
// the instance role.
func loadAWSConfig(ctx context.Context, log *slog.Logger, needRegion bool) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		// One request per attempt: Fetch does the retrying, with its own
		// backoff, deadline and log lines.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithLogger(sdkLogger{log}),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	// Without a region every request fails the same way; say so now rather
	// than after the retry timeout.
	if needRegion && cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: set AWS_REGION or a region in the shared config file")
	}
	return cfg, nil
}

// imdsGetter reads an EC2 instance tag from the instance metadata, which
// only has tags when the instance allows it (InstanceMetadataTags=enabled).
func imdsGetter(ctx context.Context, tag string, log *slog.Logger) (getter, error) {
	if strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		return nil, errors.New("the instance metadata service is disabled by AWS_EC2_METADATA_DISABLED=true")
	}
	cfg, err := loadAWSConfig(ctx, log, false)
	if err != nil {
		return nil, err
	}
	c := imds.NewFromConfig(cfg, func(o *imds.Options) {
		// IMDSv2 only: every instance that can expose tags in its metadata
		// serves session tokens, so falling back to v1 would only hide a
		// token failure behind a less protected request.
		o.EnableFallback = aws.FalseTernary
	})
	path := "tags/instance/" + tag
	return func(ctx context.Context) (string, error) {
		out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			if httpStatus(err) == http.StatusNotFound {
				return "", final(ErrNotFound, fmt.Errorf("the instance metadata has no tag %q (is the tag set, and are tags allowed in instance metadata?)", tag))
			}
			return "", classifyAWS(err)
		}
		defer out.Content.Close()
		b, err := io.ReadAll(io.LimitReader(out.Content, maxFileSize))
		if err != nil {
			return "", fmt.Errorf("reading the tag: %w", err)
		}
		return string(b), nil
	}, nil
}

// ssmGetter reads an SSM parameter, decrypting a SecureString.
func ssmGetter(ctx context.Context, name string, log *slog.Logger) (getter, error) {
	cfg, err := loadAWSConfig(ctx, log, true)
	if err != nil {
		return nil, err
	}
	c := ssm.NewFromConfig(cfg)
	return func(ctx context.Context) (string, error) {
		out, err := c.GetParameter(ctx, &ssm.GetParameterInput{
			Name:           aws.String(name),
			WithDecryption: aws.Bool(true),
		})
		if err != nil {
			return "", classifyAWS(err)
		}
		if out.Parameter == nil {
			return "", nil
		}
		return aws.ToString(out.Parameter.Value), nil
	}, nil
}

// secretsManagerGetter reads a secret's current version: its SecretString,
// or its SecretBinary taken as UTF-8 text when it has no string.
func secretsManagerGetter(ctx context.Context, id string, log *slog.Logger) (getter, error) {
	cfg, err := loadAWSConfig(ctx, log, true)
	if err != nil {
		return nil, err
	}
	c := secretsmanager.NewFromConfig(cfg)
	return func(ctx context.Context) (string, error) {
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			return "", classifyAWS(err)
		}
		if s := aws.ToString(out.SecretString); s != "" {
			return s, nil
		}
		return string(out.SecretBinary), nil
	}, nil
}

// Error codes of the AWS APIs used here that mean the same as a 404 or 403.
var (
	awsNotFound = map[string]bool{
		"ParameterNotFound":         true,
		"ParameterVersionNotFound":  true,
		"ResourceNotFoundException": true,
	}
	awsDenied = map[string]bool{
		"UnrecognizedClientException": true,
		"InvalidClientTokenId":        true,
		"InvalidSignatureException":   true,
		"SignatureDoesNotMatch":       true,
		"ExpiredTokenException":       true,
		"ExpiredToken":                true,
	}
)

// classifyAWS sorts an SDK error into final or worth retrying. Anything that
// got no answer at all (refused, timed out, DNS) is retried, and so are
// throttling and 5xx; an answer that refuses or does not find is final.
func classifyAWS(err error) error {
	// Credentials could not be had: an instance role is served by IMDS,
	// which may not be up yet at boot.
	var se *v4.SigningError
	if errors.As(err, &se) {
		return err
	}
	var code string
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := httpStatus(err)
	_, throttled := retry.DefaultThrottleErrorCodes[code]
	_, timedOut := retry.DefaultRetryableErrorCodes[code]
	switch {
	case status == 0 && code == "":
		return err
	case throttled || timedOut:
		return err
	case awsNotFound[code] || status == http.StatusNotFound:
		return final(ErrNotFound, err)
	case awsDenied[code] || strings.Contains(code, "AccessDenied") ||
		status == http.StatusUnauthorized || status == http.StatusForbidden:
		return final(ErrAccessDenied, err)
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return err
	}
	return final(nil, err)
}

// httpStatus is the HTTP status an SDK error carries, or 0 if the request got
// no answer.
func httpStatus(err error) int {
	var he interface{ HTTPStatusCode() int }
	if errors.As(err, &he) {
		return he.HTTPStatusCode()
	}
	return 0
}

// sdkLogger passes the SDK's own messages on to our log. Request and response
// bodies are never among them: they are logged only when a ClientLogMode
// asks for it, and none is set.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}
