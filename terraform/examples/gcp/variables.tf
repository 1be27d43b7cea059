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
  description = "HTTPS URL of the Luna .deb the nodes install (the version the Luna image holds, if source_image is one)."
  type        = string
}

variable "release_sha256" {
  description = "SHA-256 of the file at release_url."
  type        = string
}

variable "passwd" {
  description = "Password clients must send."
  type        = string
  sensitive   = true
}

variable "client_cidrs" {
  description = "Private ranges the clients connect from."
  type        = list(string)
  default     = ["10.0.0.0/8"]
}

variable "data_bucket" {
  description = "Bucket holding the data the startup SQL loads."
  type        = string
}
