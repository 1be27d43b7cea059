# Copy, fill in and pass with -var-file; `make image-gcp` / `make image-aws`
# set luna_version themselves.
gcp_project_id   = "my-project"
gcp_zone         = "europe-west1-b"
gcp_image_family = "luna"

aws_region      = "eu-west-1"
aws_ami_regions = ["eu-central-1"]

# Needs internet on the build instance.
bake_extensions = ["httpfs", "spatial"]
