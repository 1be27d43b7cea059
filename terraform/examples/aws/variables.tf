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

variable "route_table_ids" {
  description = "Route tables of the private subnets, for the S3 gateway endpoint."
  type        = list(string)
  default     = []
}

variable "create_endpoints" {
  description = "Create the S3 gateway endpoint and the ssm, ssmmessages, ec2messages and Secrets Manager interface endpoints the nodes reach the services through; false when the VPC has them (or a NAT gateway) already."
  type        = bool
  default     = true
}

variable "ssh_authorized_keys" {
  description = "OpenSSH public keys of the operators (the lines of their .pub files), for SSH to the nodes through Session Manager as user admin."
  type        = list(string)
  default     = []
}

variable "passwd_version" {
  description = "Increase to store a new random password in SSM."
  type        = number
  default     = 1
}

variable "ami_id" {
  description = "A Debian 12 AMI, or the Luna AMI built with `make image-aws`."
  type        = string
}

variable "release_url" {
  description = "s3:// (through the gateway endpoint) or https:// (needs a NAT gateway) URL of the Luna .deb the nodes install (the version the Luna AMI holds, if ami_id is one). A presigned https:// URL expires, and nodes launched after that cannot install it."
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
