package deploy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	"google.golang.org/api/googleapi"
)

// OpError is a failed cloud call: which operation, the cloud's error, and
// what the operator should check.
type OpError struct {
	Op   string // e.g. "creating instance template luna-20260101-000000"
	Err  error
	Hint string
}

func (e *OpError) Error() string {
	if e.Hint == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error() + "\n  check: " + e.Hint
}

func (e *OpError) Unwrap() error { return e.Err }

// CloudError wraps err from the operation op with advice drawn from the
// GCP (googleapi) or AWS (smithy) error code. Context cancellation passes
// through unchanged so that Ctrl-C is not reported as a cloud failure.
func CloudError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var oe *OpError
	if errors.As(err, &oe) {
		return err
	}
	return &OpError{Op: op, Err: err, Hint: hint(err)}
}

// hint returns what to check for a cloud error, or "".
func hint(err error) string {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gcpHint(gerr.Code, gcpReasons(gerr), gerr.Message)
	}
	var aerr smithy.APIError
	if errors.As(err, &aerr) {
		return awsHint(aerr.ErrorCode(), aerr.ErrorMessage())
	}
	return ""
}

func gcpReasons(e *googleapi.Error) string {
	var rs []string
	for _, it := range e.Errors {
		rs = append(rs, it.Reason)
	}
	return strings.Join(rs, " ")
}

// Hints shared by both clouds.
const (
	hintQuota      = "a quota is exhausted: see the quotas of the project/account in this region (CPUs, instances, addresses) and request more, or use a smaller machine type or size"
	hintPermission = "the credentials lack a permission: check the account, project/profile and its roles (GCP: Compute Instance Admin and Service Account User; AWS: ec2, autoscaling and iam:PassRole)"
	hintImage      = "the image is missing or not readable: check the image name or family and its project (GCP) or the AMI ID in this region (AWS)"
	hintNotFound   = "a resource does not exist: check the group name, the project/region (or AWS region/profile) and the names of networks, subnets, key pairs and profiles"
	hintExists     = "a resource with this name exists already: use update to change it, or delete it first"
	hintAuth       = "no valid credentials: run gcloud auth application-default login (GCP) or aws configure / aws sso login, or set the standard credential environment variables"
)

// gcpHint maps an HTTP status, googleapi reasons and message to advice.
// Operation errors (QUOTA_EXCEEDED, ...) arrive as message text.
func gcpHint(code int, reasons, msg string) string {
	text := reasons + " " + msg
	switch {
	case strings.Contains(text, "QUOTA_EXCEEDED") || strings.Contains(text, "quotaExceeded") || strings.Contains(text, "rateLimitExceeded"):
		return hintQuota
	case strings.Contains(text, "ZONE_RESOURCE_POOL_EXHAUSTED"):
		return "the zone has no capacity for this machine type now: try other zones (--zone) or another machine type"
	case code == http.StatusNotFound && strings.Contains(strings.ToLower(msg), "image"):
		return hintImage
	case code == http.StatusUnauthorized:
		return hintAuth
	case code == http.StatusForbidden:
		return hintPermission
	case code == http.StatusNotFound:
		return hintNotFound
	case code == http.StatusConflict || strings.Contains(text, "alreadyExists"):
		return hintExists
	}
	return ""
}

// awsHint maps an AWS error code to advice.
func awsHint(code, msg string) string {
	switch {
	case strings.HasPrefix(code, "InvalidAMIID"):
		return hintImage
	case code == "UnauthorizedOperation" || code == "AccessDenied" || code == "AccessDeniedException" ||
		code == "UnauthorizedAccess" || code == "Forbidden":
		return hintPermission
	case code == "AuthFailure" || code == "InvalidClientTokenId" || code == "ExpiredToken" || code == "SignatureDoesNotMatch":
		return hintAuth
	case strings.Contains(code, "LimitExceeded") || code == "InsufficientInstanceCapacity" || code == "VcpuLimitExceeded":
		return hintQuota
	case strings.HasSuffix(code, "AlreadyExists") || strings.HasSuffix(code, "AlreadyExistsException") || code == "AlreadyExists":
		return hintExists
	case strings.HasSuffix(code, ".NotFound") || strings.HasSuffix(code, "NotFoundException") ||
		(code == "ValidationError" && strings.Contains(msg, "not found")):
		return hintNotFound
	}
	return ""
}

// ErrAborted is returned when the operator answers no to a confirmation.
var ErrAborted = errors.New("aborted: nothing was changed")
