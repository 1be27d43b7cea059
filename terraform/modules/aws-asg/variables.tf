variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "luna"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,19}$", var.name))
    error_message = "name must be 1 to 20 letters, digits or hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the instances, security group and load balancer."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Private subnets, one per availability zone, the group spreads over."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids must hold at least one subnet ID such as subnet-0123456789abcdef0."
  }
}

variable "ami_id" {
  description = "Boot image: a stock Debian 12 AMI, on which user data installs release_url at first boot, or the Luna AMI built by packer/, which already holds that version."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI ID such as ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "Instance type. Luna holds its tables in memory: size memory for the preloaded data."
  type        = string
  default     = "r6i.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must be an EC2 instance type such as r6i.xlarge."
  }
}

variable "root_volume_size_gb" {
  description = "Root volume size in GiB; also holds DuckDB's spill directory."
  type        = number
  default     = 50

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 16384 && floor(var.root_volume_size_gb) == var.root_volume_size_gb
    error_message = "root_volume_size_gb must be a whole number from 8 to 16384."
  }
}

variable "min_size" {
  description = "Fewest instances."
  type        = number
  default     = 2

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number, 0 or more."
  }
}

variable "max_size" {
  description = "Most instances; at least min_size. Leave room above desired_size for an instance refresh, which launches up to max_healthy_percentage of it before terminating."
  type        = number
  default     = 4

  validation {
    condition     = var.max_size >= 1 && var.max_size <= 1000 && floor(var.max_size) == var.max_size
    error_message = "max_size must be a whole number from 1 to 1000."
  }
}

variable "desired_size" {
  description = "Instances to run; null leaves the size to a target tracking policy on average CPU (cpu_target_percent), between min_size and max_size, starting at min_size."
  type        = number
  default     = 2
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation (percent) the target tracking policy keeps the group at when desired_size is null."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent > 0 && var.cpu_target_percent < 100
    error_message = "cpu_target_percent must be above 0 and below 100."
  }
}

variable "api_port" {
  description = "Port of the SQL API (7688 as packaged); the nodes' LUNA_API_HOST_PORT is set to it."
  type        = number
  default     = 7688

  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535 && floor(var.api_port) == var.api_port
    error_message = "api_port must be a whole number from 1 to 65535."
  }
}

variable "health_port" {
  description = "Port of the HTTP side port serving /readyz (7689 as packaged); the nodes' LUNA_HEALTH_HOST_PORT is set to it."
  type        = number
  default     = 7689

  validation {
    condition     = var.health_port >= 1 && var.health_port <= 65535 && floor(var.health_port) == var.health_port
    error_message = "health_port must be a whole number from 1 to 65535."
  }
}

variable "allowed_cidrs" {
  description = "IPv4 CIDR ranges allowed to reach the API port. Luna's AUTH travels in clear text: keep these private."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "allowed_cidrs must hold IPv4 CIDR ranges such as 10.0.0.0/8."
  }
}

variable "health_check_cidrs" {
  description = "Ranges the load balancer's health checks come from (the VPC's CIDR, or the subnets')."
  type        = list(string)
  default     = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]

  validation {
    condition     = alltrue([for c in var.health_check_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "health_check_cidrs must hold IPv4 CIDR ranges."
  }
}

variable "buckets" {
  description = "S3 buckets the instances may read (s3:// URLs in the startup SQL)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for b in var.buckets : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", b))])
    error_message = "buckets must hold S3 bucket names (3 to 63 lowercase letters, digits, dots or hyphens; no s3:// prefix), none empty."
  }
}

variable "passwd_ssm_parameter" {
  description = "Name of the SSM parameter (SecureString) holding the password clients must send: the default way. Luna reads it at every start (--passwd-from aws-ssm:NAME), so it never reaches the disk, and only the instance role (ssm:GetParameter on this parameter) can. Create it outside the module, e.g. with value_wo so that the password is not in the state (see examples/aws)."
  type        = string
  default     = null

  validation {
    condition     = var.passwd_ssm_parameter == null ? true : (length(var.passwd_ssm_parameter) <= 1011 && can(regex("^[a-zA-Z0-9_./-]+$", var.passwd_ssm_parameter)))
    error_message = "passwd_ssm_parameter must be an SSM parameter name such as /luna/passwd."
  }
}

variable "passwd_secret_arn" {
  description = "ARN of a Secrets Manager secret holding the password, instead of passwd_ssm_parameter (--passwd-from aws-secretsmanager:ARN); the instance role gets secretsmanager:GetSecretValue on it."
  type        = string
  default     = null

  validation {
    condition     = var.passwd_secret_arn == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.passwd_secret_arn))
    error_message = "passwd_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "no_passwd" {
  description = "Run without authentication: any client that reaches the API port may query. Only for tests on a private network."
  type        = bool
  default     = false
}

variable "passwd_kms_key_arn" {
  description = "KMS key encrypting the password parameter or secret (and the secret startup SQL), if it is a customer managed key; the instances get kms:Decrypt on it."
  type        = string
  default     = null

  validation {
    condition     = var.passwd_kms_key_arn == null ? true : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.passwd_kms_key_arn))
    error_message = "passwd_kms_key_arn must be a KMS key ARN."
  }
}

variable "init_sql_ssm_parameter" {
  description = "Name of an SSM SecureString holding startup SQL with credentials (CREATE SECRET ... KEY_ID, SECRET), which init_sql, being user data, must not carry: the startup script fetches it at every boot into /etc/luna/init.d/40-secret.sql (readable by root and the service only), run before init_sql. The instance role gets ssm:GetParameter on it."
  type        = string
  default     = null

  validation {
    condition     = var.init_sql_ssm_parameter == null ? true : (length(var.init_sql_ssm_parameter) <= 1011 && can(regex("^[a-zA-Z0-9_./-]+$", var.init_sql_ssm_parameter)))
    error_message = "init_sql_ssm_parameter must be an SSM parameter name such as /luna/init-sql."
  }
}

variable "init_sql_secret_arn" {
  description = "ARN of a Secrets Manager secret holding startup SQL with credentials, instead of init_sql_ssm_parameter; the instance role gets secretsmanager:GetSecretValue on it."
  type        = string
  default     = null

  validation {
    condition     = var.init_sql_secret_arn == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.init_sql_secret_arn))
    error_message = "init_sql_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "tls_secret_arn" {
  description = "TLS on the API port: ARN of a Secrets Manager secret holding the server's certificate (chain) and its private key, both PEM, in one value. The startup script fetches it at every boot into /etc/luna/tls/server.pem (root and the service only); a renewed certificate reaches a running node when the startup script runs again, without a restart of luna. The instance role gets secretsmanager:GetSecretValue on it. Plain and TLS clients share the port unless require_tls."
  type        = string
  default     = null

  validation {
    condition     = var.tls_secret_arn == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.tls_secret_arn))
    error_message = "tls_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "tls_client_ca_secret_arn" {
  description = "Mutual TLS: ARN of a Secrets Manager secret holding the CA certificates (PEM) that sign client certificates; a client without one is refused. Needs tls_secret_arn."
  type        = string
  default     = null

  validation {
    condition     = var.tls_client_ca_secret_arn == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.tls_client_ca_secret_arn))
    error_message = "tls_client_ca_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "require_tls" {
  description = "Refuse plain TCP clients on the API port (LUNA_REQUIRE_TLS). Needs tls_secret_arn. The target group's health check uses the health port and is not affected."
  type        = bool
  default     = false
}

variable "users_secret_arn" {
  description = "Named users with roles (read, write, admin): ARN of a Secrets Manager secret holding a users file as `luna user add` writes it (bcrypt hashes, never passwords). Luna reads it at every start and on reload (--users-from aws-secretsmanager); clients send AUTH <user> <password>. The instance role gets secretsmanager:GetSecretValue on it."
  type        = string
  default     = null

  validation {
    condition     = var.users_secret_arn == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.users_secret_arn))
    error_message = "users_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "init_sql" {
  description = "Startup SQL every instance runs before serving (passed base64-encoded in the gzip-compressed user data, written to /etc/luna/init.d), so every node preloads the same tables. EC2 takes at most 16384 bytes of user data, and the compressed size counts: next to this repository's startup script at least 7 KiB of any SQL fits, 12 KiB and more of typical SQL (it compresses); the launch template's precondition measures the total. Load larger data from S3 in a short statement. User data is readable by anyone with ec2:DescribeInstanceAttribute and every process on the instance: put credentials in init_sql_ssm_parameter instead."
  type        = string
  default     = ""
}

variable "release_url" {
  description = "URL of the Luna .deb (luna_<version>_amd64.deb) the startup script installs: s3://BUCKET/KEY, read with the instance role (granted s3:GetObject on it; an S3 gateway endpoint is all the network it needs), or https://. A presigned https:// URL expires: instances launched later (replacements, scaling, a refresh) then cannot install it. On the Luna AMI, name the package it holds: nothing is downloaded."
  type        = string

  validation {
    condition     = can(regex("^(https://[^[:space:]'\"]+|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^[:space:]'\"]+)$", var.release_url))
    error_message = "release_url must be an https:// or s3://BUCKET/KEY URL without spaces or quotes."
  }
}

variable "release_sha256" {
  description = "SHA-256 (hex) of the file at release_url; the startup script refuses a download that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release_sha256))
    error_message = "release_sha256 must be 64 lowercase hex digits."
  }
}

variable "extra_env" {
  description = "Further luna.env settings for every node (LUNA_NAME = value), e.g. { LUNA_MEMORY_LIMIT = \"80%\" }; see systemd/luna.env. The password has its own variable. The security settings default as luna.env sets them: LUNA_ALLOWED_DIRECTORIES=/var/lib/luna (file lockdown; empty turns it off), LUNA_IDLE_TIMEOUT=15m, LUNA_AUTH_TIMEOUT=10s, LUNA_WRITE_TIMEOUT=1m, LUNA_MAX_UNAUTHENTICATED_CONNECTIONS=0 (automatic), LUNA_QUERY_TIMEOUT=0 (none)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for k, v in var.extra_env :
      can(regex("^LUNA_[A-Z0-9_]+$", k)) && !contains(["LUNA_PASSWD", "LUNA_PASSWD_FILE", "LUNA_PASSWD_FROM", "LUNA_API_HOST_PORT", "LUNA_HEALTH_HOST_PORT", "LUNA_REQUIRE_TLS", "LUNA_TLS_CERT_FILE", "LUNA_TLS_KEY_FILE", "LUNA_TLS_CLIENT_CA_FILE", "LUNA_USERS_FILE", "LUNA_USERS_FROM"], k) && !can(regex("['\r\n]", v))
    ])
    error_message = "extra_env keys must be LUNA_* settings other than the password, port, TLS and users settings (which have their own variables), with one-line values without single quotes."
  }
}

variable "ssm_access" {
  description = "Let operators reach the nodes through AWS Systems Manager Session Manager (luna-deploy asg logs/restart --via ssm, aws ssm start-session), with no inbound port, bastion or public address: the instance role gets the AWS managed policy AmazonSSMManagedInstanceCore, and the startup script installs amazon-ssm-agent where the AMI lacks it (Debian's do; the Luna AMI has it) from the region's S3 bucket. The nodes must reach the ssm, ssmmessages and ec2messages endpoints (interface endpoints, or a NAT gateway) and S3 (see examples/aws)."
  type        = bool
  default     = true
}

variable "ssh_authorized_keys" {
  description = "OpenSSH public keys (\"ssh-ed25519 AAAA... comment\" lines, as in a .pub file) the startup script adds to the login user's (admin, Debian's) ~/.ssh/authorized_keys, so that SSH through Session Manager works without an EC2 key pair. Each key is a few hundred bytes of the user data."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([for k in var.ssh_authorized_keys :
      can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com) [A-Za-z0-9+/]+={0,2}( [^[:cntrl:]']*)?$", k))
    ])
    error_message = "ssh_authorized_keys must hold OpenSSH public keys, one each: \"TYPE BASE64 [COMMENT]\" (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or their sk- forms), without options, line breaks or single quotes."
  }
}

variable "startup_script" {
  description = "Startup script content; null uses scripts/startup-aws-asg.sh from this repository."
  type        = string
  default     = null
}

variable "health_check_grace_period" {
  description = "Seconds a new instance has to pass the target group's /readyz check before it counts as unhealthy and is replaced: at least boot + install + the longest preload. Measure it on a node as the time from the instance's launch to the server's \"luna is serving\" log line (journalctl -u luna; \"startup SQL finished\" gives the preload alone as duration=), and add a margin."
  type        = number
  default     = 300

  validation {
    condition     = var.health_check_grace_period >= 0 && var.health_check_grace_period <= 7200
    error_message = "health_check_grace_period must be from 0 to 7200."
  }
}

variable "instance_warmup" {
  description = "Seconds a new instance counts as starting up, for instance refreshes (before the next batch) and scaling (before its CPU counts): about the grace period."
  type        = number
  default     = 300

  validation {
    condition     = var.instance_warmup >= 0 && var.instance_warmup <= 7200 && floor(var.instance_warmup) == var.instance_warmup
    error_message = "instance_warmup must be a whole number from 0 to 7200."
  }
}

variable "min_healthy_percentage" {
  description = "Share of desired_size (percent) an instance refresh or a replacement keeps in service; 100 (the default) launches before it terminates."
  type        = number
  default     = 100

  validation {
    condition     = var.min_healthy_percentage >= 0 && var.min_healthy_percentage <= 100 && floor(var.min_healthy_percentage) == var.min_healthy_percentage
    error_message = "min_healthy_percentage must be a whole number from 0 to 100."
  }
}

variable "max_healthy_percentage" {
  description = "Share of desired_size (percent) an instance refresh or a replacement may run at once, new and old together: 200 (the default) replaces the whole fleet in one batch between checkpoints. At most 100 above min_healthy_percentage."
  type        = number
  default     = 200

  validation {
    condition     = var.max_healthy_percentage >= 100 && var.max_healthy_percentage <= 200 && floor(var.max_healthy_percentage) == var.max_healthy_percentage
    error_message = "max_healthy_percentage must be a whole number from 100 to 200."
  }
}

variable "checkpoint_percentages" {
  description = "Shares of the group (percent, ascending, ending with 100) at which an instance refresh pauses for checkpoint_delay seconds; empty for no pauses."
  type        = list(number)
  default     = [50, 100]

  validation {
    condition = length(var.checkpoint_percentages) == 0 ? true : (
      alltrue([for p in var.checkpoint_percentages : p >= 1 && p <= 100 && floor(p) == p]) &&
      var.checkpoint_percentages[length(var.checkpoint_percentages) - 1] == 100 &&
      alltrue([for i in range(1, length(var.checkpoint_percentages)) : var.checkpoint_percentages[i] > var.checkpoint_percentages[i - 1]])
    )
    error_message = "checkpoint_percentages must be whole percentages from 1 to 100, ascending, each once, ending with 100."
  }
}

variable "checkpoint_delay" {
  description = "Seconds an instance refresh waits at each checkpoint."
  type        = number
  default     = 300

  validation {
    condition     = var.checkpoint_delay >= 0 && var.checkpoint_delay <= 172800 && floor(var.checkpoint_delay) == var.checkpoint_delay
    error_message = "checkpoint_delay must be a whole number from 0 to 172800 (48 hours)."
  }
}

variable "internal_nlb" {
  description = "Create an internal network load balancer on the API port, with a target group health-checking /readyz. Without it, target_group_arns must name a target group that does: the group's health checks rely on one."
  type        = bool
  default     = true
}

variable "target_group_arns" {
  description = "Further target groups to register the instances with; their health checks (HTTP /readyz on health_port) count for the group's health."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource and propagated to the instances."
  type        = map(string)
  default     = {}
}
