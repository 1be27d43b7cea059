# A fleet of three Luna nodes behind an internal network load balancer, each
# loading the same table from S3 at boot, with the password in SSM.
resource "random_password" "luna" {
  length  = 32
  special = false
}

resource "aws_ssm_parameter" "passwd" {
  name  = "/luna/passwd"
  type  = "SecureString"
  value = random_password.luna.result
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

  init_sql = <<-SQL
    CREATE TABLE trips AS
      SELECT * FROM read_parquet('s3://${var.data_bucket}/trips/*.parquet');
  SQL
}
