# Luna VM images for GCP and AWS: Debian 12 with the Luna package installed
# and luna-configure@gcp-mig.service or luna-configure@aws-asg.service
# enabled, which configures Luna from the instance metadata (GCP) or user
# data (AWS) at every boot and starts it, so an instance needs no startup
# script; the AWS image also has amazon-ssm-agent, which Debian's AMIs lack
# and Session Manager needs; cleaned so every instance starts fresh. Build
# with `make image-gcp` or `make image-aws`.

packer {
  required_version = ">= 1.9.0"

  required_plugins {
    googlecompute = {
      source  = "github.com/hashicorp/googlecompute"
      version = "= 1.1.4"
    }
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.2.9"
    }
  }
}

locals {
  deb_path = var.deb_path != "" ? var.deb_path : "${path.root}/../dist/luna_${var.luna_version}_amd64.deb"
  # The SSM agent for Debian from the build region's bucket, the URL AWS
  # documents in "Manually install SSM Agent on Debian Server instances"
  # (AWS Systems Manager User Guide); the agent is the same in every region
  # the AMI is copied to.
  ssm_agent_url = "https://s3.${var.aws_region}.amazonaws.com/amazon-ssm-${var.aws_region}/latest/debian_amd64/amazon-ssm-agent.deb"
  # Image names and labels allow only lowercase letters, digits and hyphens.
  version_label = lower(regex_replace(var.luna_version, "[^0-9A-Za-z-]", "-"))
  timestamp     = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "googlecompute" "luna" {
  project_id          = var.gcp_project_id
  zone                = var.gcp_zone
  machine_type        = var.gcp_machine_type
  network             = var.gcp_network
  subnetwork          = var.gcp_subnetwork
  source_image_family = "debian-12"
  ssh_username        = "packer"
  disk_size           = 20
  image_name          = "luna-${local.version_label}-${local.timestamp}"
  image_family        = var.gcp_image_family
  image_description   = "Luna ${var.luna_version} on Debian 12"
  image_labels = {
    app          = "luna"
    luna-version = local.version_label
  }
}

source "amazon-ebs" "luna" {
  region        = var.aws_region
  instance_type = var.aws_instance_type
  subnet_id     = var.aws_subnet_id
  ssh_username  = "admin"
  ami_name      = "luna-${local.version_label}-${local.timestamp}"
  ami_regions   = var.aws_ami_regions

  # Debian's own AMIs.
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["136693071363"]
    most_recent = true
  }

  # The build instance, like the fleet's, answers IMDSv2 only.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = {
    Name        = "luna-${var.luna_version}"
    app         = "luna"
    LunaVersion = var.luna_version
  }
  run_tags = {
    Name = "packer-luna-${var.luna_version}"
  }
}

build {
  sources = ["source.googlecompute.luna", "source.amazon-ebs.luna"]

  provisioner "file" {
    source      = local.deb_path
    destination = "/tmp/luna.deb"
  }

  provisioner "shell" {
    script          = "${path.root}/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    environment_vars = [
      "LUNA_DEB=/tmp/luna.deb",
      "LUNA_CONFIGURE=${source.type == "googlecompute" ? "gcp-mig" : "aws-asg"}",
      "LUNA_BAKE_EXTENSIONS=${join(" ", var.bake_extensions)}",
      "LUNA_SSM_AGENT_URL=${source.type == "amazon-ebs" ? local.ssm_agent_url : ""}",
    ]
  }

  provisioner "shell" {
    script          = "${path.root}/cleanup.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
  }
}
