# A fleet of three Luna nodes behind an internal network load balancer, each
# loading the same table from S3 at boot, with the password in SSM.

# The password is made at apply time and written to SSM through the
# write-only value_wo: it is in neither the state nor a plan. Clients read it
# with `aws ssm get-parameter --with-decryption --name /luna/passwd`;
# increase passwd_version to store a new one.
ephemeral "random_password" "luna" {
  length  = 32
  special = false
}

resource "aws_ssm_parameter" "passwd" {
  name             = "/luna/passwd"
  type             = "SecureString"
  value_wo         = ephemeral.random_password.luna.result
  value_wo_version = var.passwd_version
}

# --- Egress ----------------------------------------------------------------------
#
# The nodes run in private subnets without a NAT gateway: they reach S3 (an
# s3:// release, the data, the SSM agent's package) through a gateway
# endpoint on the subnets' route tables, and SSM and Secrets Manager (the
# password, secret startup SQL) through interface endpoints with private
# DNS, as well as ssmmessages and ec2messages, which Session Manager needs
# (the way operators reach the nodes: luna-deploy asg logs --via ssm).
# Nothing else is needed with an s3:// release; an https:// release URL, or
# Debian's mirrors should apt need a dependency, need a NAT gateway instead.
# Set create_endpoints = false when the VPC has these endpoints (or a NAT
# gateway) already.
data "aws_vpc" "luna" {
  id = var.vpc_id
}

resource "aws_vpc_endpoint" "s3" {
  count = var.create_endpoints ? 1 : 0

  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.route_table_ids
}

resource "aws_security_group" "endpoints" {
  count = var.create_endpoints ? 1 : 0

  name_prefix = "luna-endpoints-"
  description = "HTTPS from the VPC to the Systems Manager and Secrets Manager endpoints"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints" {
  count = var.create_endpoints ? 1 : 0

  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS from the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = data.aws_vpc.luna.cidr_block
}

resource "aws_vpc_endpoint" "interface" {
  for_each = var.create_endpoints ? toset(["ssm", "ssmmessages", "ec2messages", "secretsmanager"]) : toset([])

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
}

module "luna" {
  source = "../../modules/aws-asg"

  name           = "luna"
  vpc_id         = var.vpc_id
  subnet_ids     = var.subnet_ids
  ami_id         = var.ami_id
  instance_type  = "r6i.xlarge"
  release_url    = var.release_url
  release_sha256 = var.release_sha256
  min_size       = 3
  desired_size   = 3
  max_size       = 6 # an instance refresh launches a new node per old one first
  # Boot + install + the preload of trips (the server's first to its
  # ready log line, journalctl -u luna), with a margin.
  health_check_grace_period = 600
  instance_warmup           = 600
  allowed_cidrs             = var.client_cidrs
  buckets                   = [var.data_bucket]
  passwd_ssm_parameter      = aws_ssm_parameter.passwd.name
  internal_nlb              = true
  # Session Manager (on by default) and the operators' keys for SSH
  # through it.
  ssm_access          = true
  ssh_authorized_keys = var.ssh_authorized_keys

  init_sql = <<-SQL
    CREATE TABLE trips AS
      SELECT * FROM read_parquet('s3://${var.data_bucket}/trips/*.parquet');
  SQL

  # The nodes' first boot needs the endpoints.
  depends_on = [aws_vpc_endpoint.s3, aws_vpc_endpoint.interface]
}
