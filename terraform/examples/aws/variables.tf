variable "region" {
  description = "Region of the fleet."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC to deploy into."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, one per availability zone."
  type        = list(string)
}

variable "ami_id" {
  description = "A Debian 12 AMI, or the Luna AMI built with `make image-aws`."
  type        = string
}

variable "release_url" {
  description = "HTTPS URL of the Luna .deb the nodes install (the version the Luna AMI holds, if ami_id is one)."
  type        = string
}

variable "release_sha256" {
  description = "SHA-256 of the file at release_url."
  type        = string
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
