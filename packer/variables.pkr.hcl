variable "luna_version" {
  type        = string
  description = "Luna version being imaged; names the .deb (dist/luna_<version>_amd64.deb), the image and its label/tag."

  validation {
    condition     = can(regex("^[0-9A-Za-z][0-9A-Za-z.+~-]*$", var.luna_version))
    error_message = "The luna_version must be a Debian version such as 1.2.0 (letters, digits, . + ~ -)."
  }
}

variable "deb_path" {
  type        = string
  default     = ""
  description = "The .deb to install; empty: dist/luna_<luna_version>_amd64.deb in the repository (make deb)."
}

variable "bake_extensions" {
  type        = list(string)
  default     = []
  description = "DuckDB extensions to pre-install into the service's extension directory (e.g. [\"httpfs\", \"spatial\"]); needs internet on the build instance."

  validation {
    condition     = length([for e in var.bake_extensions : e if !can(regex("^[a-z0-9_]+$", e))]) == 0
    error_message = "The bake_extensions entries must be extension names such as httpfs."
  }
}

variable "gcp_project_id" {
  type        = string
  default     = ""
  description = "Project the GCP image is built in (required for the googlecompute source)."
}

variable "gcp_zone" {
  type        = string
  default     = "europe-west1-b"
  description = "Zone of the temporary build instance."
}

variable "gcp_machine_type" {
  type        = string
  default     = "e2-standard-2"
  description = "Machine type of the temporary build instance."
}

variable "gcp_network" {
  type        = string
  default     = "default"
  description = "Network of the temporary build instance."
}

variable "gcp_subnetwork" {
  type        = string
  default     = ""
  description = "Subnetwork of the temporary build instance; empty: the network's default."
}

variable "gcp_image_family" {
  type        = string
  default     = "luna"
  description = "Image family of the result; the Terraform module's source_image can name it."
}

variable "aws_region" {
  type        = string
  default     = "eu-west-1"
  description = "Region the AMI is built in."
}

variable "aws_instance_type" {
  type        = string
  default     = "t3.medium"
  description = "Instance type of the temporary build instance."
}

variable "aws_subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the temporary build instance; empty: the default VPC."
}

variable "aws_ami_regions" {
  type        = list(string)
  default     = []
  description = "Further regions the AMI is copied to."
}
