variable "project_id" {
  description = "Project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the fleet."
  type        = string
  default     = "europe-west1"
}

variable "source_image" {
  description = "Debian 12, or the Luna image built with `make image-gcp`."
  type        = string
  default     = "projects/debian-cloud/global/images/family/debian-12"
}

variable "release_url" {
  description = "gs:// or https:// URL of the Luna .deb the nodes install (the version the Luna image holds, if source_image is one). A presigned https:// URL expires, and nodes created after that cannot install it."
  type        = string
}

variable "release_sha256" {
  description = "SHA-256 of the file at release_url."
  type        = string
}

variable "passwd" {
  description = "Password clients must send; stored in Secret Manager, never in the state or a plan. Pass it at every plan and apply, e.g. TF_VAR_passwd."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "passwd_version" {
  description = "Increase to store a new passwd in Secret Manager."
  type        = number
  default     = 1
}

variable "subnet_cidr" {
  description = "Address range of the nodes' subnet."
  type        = string
  default     = "10.10.0.0/24"
}

variable "client_cidrs" {
  description = "Private ranges the clients connect from."
  type        = list(string)
  default     = ["10.10.0.0/16"]
}

variable "data_bucket" {
  description = "Bucket holding the data the startup SQL loads."
  type        = string
}
