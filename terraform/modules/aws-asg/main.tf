data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # The repository's startup script without its comment lines (the
  # shebang stays): it goes in the user data, where every byte counts, and
  # it has no multi-line string whose lines start with #.
  startup_script = var.startup_script != null ? var.startup_script : join("\n", [
    for l in split("\n", file("${path.module}/../../../scripts/startup-aws-asg.sh")) : l
    if startswith(l, "#!") || !startswith(trimspace(l), "#")
  ])

  # A name with a leading slash is already rooted; ARNs join without it.
  passwd_parameter_arn = var.passwd_ssm_parameter == null ? null : format(
    "arn:%s:ssm:%s:%s:parameter/%s",
    data.aws_partition.current.partition,
    data.aws_region.current.name,
    data.aws_caller_identity.current.account_id,
    trimprefix(var.passwd_ssm_parameter, "/"),
  )
  init_sql_parameter_arn = var.init_sql_ssm_parameter == null ? null : format(
    "arn:%s:ssm:%s:%s:parameter/%s",
    data.aws_partition.current.partition,
    data.aws_region.current.name,
    data.aws_caller_identity.current.account_id,
    trimprefix(var.init_sql_ssm_parameter, "/"),
  )
  parameter_arns = compact([local.passwd_parameter_arn, local.init_sql_parameter_arn])
  secret_arns    = compact([var.passwd_secret_arn, var.init_sql_secret_arn, var.tls_secret_arn, var.tls_client_ca_secret_arn, var.users_secret_arn])

  # An s3:// release is read with the instance role.
  release_object_arn = startswith(var.release_url, "s3://") ? "arn:${data.aws_partition.current.partition}:s3:::${trimprefix(var.release_url, "s3://")}" : null

  # luna.env settings the startup script applies on every node: the ports
  # the security group and target group assume.
  luna_env = join("\n", concat(
    ["LUNA_API_HOST_PORT=0.0.0.0:${var.api_port}", "LUNA_HEALTH_HOST_PORT=0.0.0.0:${var.health_port}"],
    var.require_tls ? ["LUNA_REQUIRE_TLS=true"] : [],
    [for k in sort(keys(var.extra_env)) : "${k}=${var.extra_env[k]}"],
  ))

  # The password source: an SSM parameter (LUNA_PASSWD_SSM_PARAMETER), a
  # Secrets Manager secret, or explicitly none; the script refuses to
  # guess.
  passwd_from = var.passwd_secret_arn != null ? "aws-secretsmanager:${var.passwd_secret_arn}" : var.passwd_ssm_parameter != null ? "" : "none"
  init_sql_from = (
    var.init_sql_ssm_parameter != null ? "aws-ssm:${var.init_sql_ssm_parameter}" :
    var.init_sql_secret_arn != null ? "aws-secretsmanager:${var.init_sql_secret_arn}" : ""
  )

  user_data = templatefile("${path.module}/user-data.sh.tftpl", {
    startup_script       = local.startup_script
    release_url          = var.release_url
    release_sha256       = var.release_sha256
    passwd_ssm_parameter = var.passwd_ssm_parameter == null ? "" : var.passwd_ssm_parameter
    passwd_from          = local.passwd_from
    init_sql_b64         = base64encode(var.init_sql)
    init_sql_from        = local.init_sql_from
    luna_env             = local.luna_env
    ssm_agent            = var.ssm_access ? "yes" : "no"
    ssh_authorized_keys  = join("\n", var.ssh_authorized_keys)
    tls_from             = var.tls_secret_arn == null ? "" : "aws-secretsmanager:${var.tls_secret_arn}"
    tls_client_ca_from   = var.tls_client_ca_secret_arn == null ? "" : "aws-secretsmanager:${var.tls_client_ca_secret_arn}"
    users_from           = var.users_secret_arn == null ? "" : "aws-secretsmanager:${var.users_secret_arn}"
  })

  # EC2 takes at most 16384 bytes of user data before base64 encoding (EC2
  # User Guide, "Work with instance user data"). The user data goes
  # gzip-compressed, which cloud-init unpacks (and the startup script reads
  # back in image mode): the compressed size is what counts. n bytes become
  # 4*ceil(n/3) base64 characters.
  user_data_b64   = base64gzip(local.user_data)
  user_data_bytes = length(local.user_data_b64) / 4 * 3 - (endswith(local.user_data_b64, "==") ? 2 : endswith(local.user_data_b64, "=") ? 1 : 0)
  user_data_fits  = local.user_data_bytes <= 16384

  tags = merge({ app = "luna" }, var.tags)
}

# --- Identity ------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "luna" {
  name_prefix        = "${var.name}-node-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "luna" {
  # The policy needs at least one statement; describing the instance's own
  # tags is harmless and lets --passwd-from aws-imds fall back to tags.
  statement {
    sid       = "DescribeTags"
    actions   = ["ec2:DescribeTags"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(var.buckets) == 0 ? [] : [1]
    content {
      sid       = "ListBuckets"
      actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
      resources = [for b in var.buckets : "arn:${data.aws_partition.current.partition}:s3:::${b}"]
    }
  }

  dynamic "statement" {
    for_each = length(var.buckets) == 0 ? [] : [1]
    content {
      sid       = "ReadObjects"
      actions   = ["s3:GetObject"]
      resources = [for b in var.buckets : "arn:${data.aws_partition.current.partition}:s3:::${b}/*"]
    }
  }

  dynamic "statement" {
    for_each = local.release_object_arn == null ? [] : [local.release_object_arn]
    content {
      sid       = "ReadRelease"
      actions   = ["s3:GetObject"]
      resources = [statement.value]
    }
  }

  # The password and the secret startup SQL, and nothing else.
  dynamic "statement" {
    for_each = length(local.parameter_arns) == 0 ? [] : [local.parameter_arns]
    content {
      sid       = "ReadParameters"
      actions   = ["ssm:GetParameter"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_arns) == 0 ? [] : [local.secret_arns]
    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = var.passwd_kms_key_arn == null ? [] : [var.passwd_kms_key_arn]
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "luna" {
  name   = "luna-node"
  role   = aws_iam_role.luna.id
  policy = data.aws_iam_policy_document.luna.json
}

# Session Manager: the agent registers the node and opens sessions with
# this policy (AWS Systems Manager User Guide, "Configure instance
# permissions required for Systems Manager").
resource "aws_iam_role_policy_attachment" "ssm" {
  count = var.ssm_access ? 1 : 0

  role       = aws_iam_role.luna.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "luna" {
  name_prefix = "${var.name}-node-"
  role        = aws_iam_role.luna.name
  tags        = local.tags
}

# --- Network -------------------------------------------------------------------

resource "aws_security_group" "luna" {
  name_prefix = "${var.name}-node-"
  description = "Luna nodes: SQL API from clients, /readyz from the load balancer"
  vpc_id      = var.vpc_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each = toset(var.allowed_cidrs)

  security_group_id = aws_security_group.luna.id
  description       = "Luna SQL API"
  ip_protocol       = "tcp"
  from_port         = var.api_port
  to_port           = var.api_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "health" {
  for_each = toset(var.health_check_cidrs)

  security_group_id = aws_security_group.luna.id
  description       = "Luna /readyz for load balancer health checks"
  ip_protocol       = "tcp"
  from_port         = var.health_port
  to_port           = var.health_port
  cidr_ipv4         = each.value
}

# Object storage, SSM and the release download go out over HTTPS.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.luna.id
  description       = "Outbound"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# --- Instances -----------------------------------------------------------------

resource "aws_launch_template" "luna" {
  name_prefix            = "${var.name}-"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.luna.id]
  user_data              = local.user_data_b64
  update_default_version = true
  tags                   = local.tags

  iam_instance_profile {
    arn = aws_iam_instance_profile.luna.arn
  }

  # IMDSv2 only: a request without a session token is refused, which keeps
  # SSRF-style reads away from the instance credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = var.name })
  }

  # A node reads its password and registers with Session Manager as it
  # boots: the role's permissions must be in place first.
  depends_on = [aws_iam_role_policy.luna, aws_iam_role_policy_attachment.ssm]

  lifecycle {
    precondition {
      condition     = local.user_data_fits
      error_message = "The user data is ${local.user_data_bytes} bytes gzip-compressed (the startup script, the settings, ${length(var.ssh_authorized_keys)} SSH keys and ${length(var.init_sql)} bytes of init_sql); EC2 takes at most 16384 bytes of user data. Next to this repository's startup script at least 7 KiB of init_sql fits, 12 KiB and more of typical SQL: load larger data from S3 in a short statement."
    }
    precondition {
      condition     = var.api_port != var.health_port
      error_message = "api_port and health_port must differ."
    }
    precondition {
      condition     = var.no_passwd ? (var.passwd_ssm_parameter == null && var.passwd_secret_arn == null) : ((var.passwd_ssm_parameter == null) != (var.passwd_secret_arn == null))
      error_message = "Set one of passwd_ssm_parameter (an SSM SecureString) and passwd_secret_arn (a Secrets Manager secret), or no_passwd = true to run without authentication."
    }
    precondition {
      condition     = var.init_sql_ssm_parameter == null || var.init_sql_secret_arn == null
      error_message = "Set at most one of init_sql_ssm_parameter and init_sql_secret_arn."
    }
    precondition {
      condition     = var.tls_secret_arn != null || (!var.require_tls && var.tls_client_ca_secret_arn == null)
      error_message = "require_tls and tls_client_ca_secret_arn need tls_secret_arn: the server's certificate and key."
    }
  }
}

resource "aws_autoscaling_group" "luna" {
  name_prefix         = "${var.name}-"
  vpc_zone_identifier = var.subnet_ids
  min_size            = var.min_size
  max_size            = var.max_size
  desired_capacity    = var.desired_size
  # ELB health checks: a node fails when the target group's /readyz check
  # does (or the EC2 status checks), once the grace period is over.
  health_check_type         = "ELB"
  health_check_grace_period = var.health_check_grace_period
  default_instance_warmup   = var.instance_warmup
  target_group_arns         = concat(aws_lb_target_group.luna[*].arn, var.target_group_arns)
  wait_for_capacity_timeout = "0"

  # Pinned to the version this plan made: an instance refresh can roll back
  # only from a numbered version, and the group never follows a template
  # version nobody rolled out.
  launch_template {
    id      = aws_launch_template.luna.id
    version = aws_launch_template.luna.latest_version
  }

  # Replacing an unhealthy node launches its successor first.
  instance_maintenance_policy {
    min_healthy_percentage = var.min_healthy_percentage
    max_healthy_percentage = var.max_healthy_percentage
  }

  # A new launch template version rolls the fleet: new nodes are launched
  # and must pass /readyz before old ones go (100% minimum healthy), the
  # refresh pauses at the checkpoints, and if new nodes fail it rolls the
  # group back to the previous version.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = var.min_healthy_percentage
      max_healthy_percentage = var.max_healthy_percentage
      instance_warmup        = var.instance_warmup
      checkpoint_percentages = length(var.checkpoint_percentages) > 0 ? var.checkpoint_percentages : null
      checkpoint_delay       = length(var.checkpoint_percentages) > 0 ? var.checkpoint_delay : null
      skip_matching          = true
      auto_rollback          = true
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    precondition {
      condition     = var.max_size >= var.min_size && (var.desired_size == null ? true : var.desired_size >= var.min_size && var.desired_size <= var.max_size)
      error_message = "Sizes must satisfy min_size <= desired_size <= max_size."
    }
    # Without a target group the group sees only EC2 status checks: a node
    # whose Luna never becomes ready would stay in service, and an instance
    # refresh could neither notice nor roll back.
    precondition {
      condition     = var.internal_nlb || length(var.target_group_arns) > 0
      error_message = "The group needs a target group that health-checks /readyz: keep internal_nlb = true, or pass target_group_arns."
    }
    precondition {
      condition     = var.max_healthy_percentage - var.min_healthy_percentage <= 100
      error_message = "max_healthy_percentage - min_healthy_percentage must be at most 100 (an Auto Scaling rule)."
    }
  }
}

# With desired_size = null the group's size follows average CPU between
# min_size and max_size.
resource "aws_autoscaling_policy" "cpu" {
  count = var.desired_size == null ? 1 : 0

  name                   = "${var.name}-cpu"
  autoscaling_group_name = aws_autoscaling_group.luna.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = var.cpu_target_percent
  }
}

# --- Internal network load balancer ----------------------------------------------

resource "aws_lb" "luna" {
  count = var.internal_nlb ? 1 : 0

  name_prefix        = substr(var.name, 0, 6)
  internal           = true
  load_balancer_type = "network"
  subnets            = var.subnet_ids
  tags               = local.tags

  enable_cross_zone_load_balancing = true
}

resource "aws_lb_target_group" "luna" {
  count = var.internal_nlb ? 1 : 0

  name_prefix = substr(var.name, 0, 6)
  vpc_id      = var.vpc_id
  protocol    = "TCP"
  port        = var.api_port
  target_type = "instance"
  tags        = local.tags
  # Lets running queries finish when a node leaves.
  deregistration_delay = 30

  # /readyz answers 200 once the startup SQL has run, 503 before and while
  # draining.
  health_check {
    protocol            = "HTTP"
    port                = tostring(var.health_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "luna" {
  count = var.internal_nlb ? 1 : 0

  load_balancer_arn = aws_lb.luna[0].arn
  protocol          = "TCP"
  port              = var.api_port
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.luna[0].arn
  }
}
