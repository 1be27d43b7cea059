// Package infra tests the deployment files: the Terraform modules and
// examples under terraform/ and the Packer template under packer/. The tests
// run the real tools (OpenTofu, tflint, Packer), built from Go module source
// by scripts/infra-tools.sh and used fully offline: providers come from a
// local filesystem mirror and Packer plugins from a local plugin directory.
// The AWS module, whose provider is too large to build here, is checked by
// parsing its HCL and evaluating its variable validations directly.
package infra
