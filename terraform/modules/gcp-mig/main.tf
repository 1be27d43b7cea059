# The region's zones, to size a rolling update when var.zones leaves the
# choice to GCP: a regional group's fixed surge or unavailable count must be
# 0 or at least its number of zones, and the group's zones are some of
# these.
data "google_compute_zones" "region" {
  project = var.project_id
  region  = var.region
}

locals {
  # Google's health checkers and passthrough load balancers probe from these.
  health_check_ranges = ["35.191.0.0/16", "130.211.0.0/22"]

  # IAP TCP forwarding connects from this range ("Using IAP for TCP
  # forwarding": it holds all addresses IAP uses for TCP forwarding).
  iap_range = "35.235.240.0/20"

  zone_count = length(var.zones) > 0 ? length(var.zones) : length(data.google_compute_zones.region.names)

  # The provider sends a fixed surge whether it is set or not, so it is
  # always set: by default one new instance per zone at a time.
  max_surge_fixed = var.max_surge_fixed != null ? var.max_surge_fixed : local.zone_count

  # luna.env settings the startup script applies on every node: the ports
  # the group's health check, named port and firewall rules assume.
  luna_env = join("\n", concat(
    ["LUNA_API_HOST_PORT=0.0.0.0:${var.api_port}", "LUNA_HEALTH_HOST_PORT=0.0.0.0:${var.health_port}"],
    var.require_tls ? ["LUNA_REQUIRE_TLS=true"] : [],
    [for k in sort(keys(var.extra_env)) : "${k}=${var.extra_env[k]}"],
  ))

  startup_script = var.startup_script != null ? var.startup_script : file("${path.module}/../../../scripts/startup-gcp-mig.sh")

  # The Secret Manager secret holding the password: the one given, or the
  # one the module makes from passwd. Full names, as the IAM binding and
  # luna --passwd-from gcp-secretmanager take them.
  create_passwd_secret = !var.no_passwd && var.passwd_secret == null
  passwd_secret = var.no_passwd ? null : (
    var.passwd_secret == null ? "projects/${var.project_id}/secrets/${var.name}-passwd" :
    startswith(var.passwd_secret, "projects/") ? var.passwd_secret : "projects/${var.project_id}/secrets/${var.passwd_secret}"
  )
  init_sql_secret = var.init_sql_secret == null ? null : (
    startswith(var.init_sql_secret, "projects/") ? var.init_sql_secret : "projects/${var.project_id}/secrets/${var.init_sql_secret}"
  )
  tls_secret           = var.tls_secret == null ? null : (startswith(var.tls_secret, "projects/") ? var.tls_secret : "projects/${var.project_id}/secrets/${var.tls_secret}")
  tls_client_ca_secret = var.tls_client_ca_secret == null ? null : (startswith(var.tls_client_ca_secret, "projects/") ? var.tls_client_ca_secret : "projects/${var.project_id}/secrets/${var.tls_client_ca_secret}")
  users_secret         = var.users_secret == null ? null : (startswith(var.users_secret, "projects/") ? var.users_secret : "projects/${var.project_id}/secrets/${var.users_secret}")
  secrets              = compact([local.passwd_secret, local.init_sql_secret, local.tls_secret, local.tls_client_ca_secret, local.users_secret])

  # A gs:// release is read with the nodes' service account.
  release_bucket = startswith(var.release_url, "gs://") ? split("/", trimprefix(var.release_url, "gs://"))[0] : null

  # The attributes the startup script (scripts/startup-gcp-mig.sh) reads.
  # Luna reads the password from Secret Manager at every start; without a
  # password the script is told so explicitly (its default source is the
  # luna-passwd attribute, which the module never sets).
  metadata = merge(
    {
      startup-script         = local.startup_script
      enable-oslogin         = "TRUE"
      block-project-ssh-keys = "TRUE"
      luna-release-url       = var.release_url
      luna-release-sha256    = var.release_sha256
      luna-env               = local.luna_env
      luna-passwd-from       = var.no_passwd ? "none" : "gcp-secretmanager:${local.passwd_secret}"
    },
    var.init_sql == "" ? {} : { luna-init-sql = var.init_sql },
    local.init_sql_secret == null ? {} : { luna-init-sql-from = "gcp-secretmanager:${local.init_sql_secret}" },
    local.tls_secret == null ? {} : { luna-tls-from = "gcp-secretmanager:${local.tls_secret}" },
    local.tls_client_ca_secret == null ? {} : { luna-tls-client-ca-from = "gcp-secretmanager:${local.tls_client_ca_secret}" },
    local.users_secret == null ? {} : { luna-users-from = "gcp-secretmanager:${local.users_secret}" },
  )

  labels = merge({ app = "luna" }, var.labels)
}

# --- Identity ------------------------------------------------------------------

resource "google_service_account" "luna" {
  project      = var.project_id
  account_id   = "${var.name}-node"
  display_name = "Luna nodes (${var.name})"
}

resource "google_storage_bucket_iam_member" "read" {
  for_each = toset(var.buckets)

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.luna.email}"
}

# The startup script downloads a gs:// release with the nodes' identity.
resource "google_storage_bucket_iam_member" "release" {
  count = local.release_bucket == null || contains(var.buckets, coalesce(local.release_bucket, "-")) ? 0 : 1

  bucket = local.release_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.luna.email}"
}

# --- Secrets -------------------------------------------------------------------

# The password, stored with a write-only version: the value is sent to
# Secret Manager but kept in neither the state nor the plan.
resource "google_secret_manager_secret" "passwd" {
  count = local.create_passwd_secret ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name}-passwd"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "passwd" {
  count = local.create_passwd_secret ? 1 : 0

  secret                 = google_secret_manager_secret.passwd[0].id
  secret_data_wo         = var.passwd
  secret_data_wo_version = var.passwd_version

  lifecycle {
    precondition {
      condition     = var.passwd != null
      error_message = "Set passwd (the module stores it in Secret Manager), passwd_secret (a secret that holds it), or no_passwd = true to run without authentication."
    }
  }
}

# Only the nodes read the secrets, one binding per secret.
resource "google_secret_manager_secret_iam_member" "read" {
  for_each = toset(local.secrets)

  secret_id  = each.value
  role       = "roles/secretmanager.secretAccessor"
  member     = "serviceAccount:${google_service_account.luna.email}"
  depends_on = [google_secret_manager_secret.passwd]
}

# Journal lines and metrics from the guest agent.
resource "google_project_iam_member" "log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.luna.email}"
}

# --- Instances -----------------------------------------------------------------

resource "google_compute_instance_template" "luna" {
  project      = var.project_id
  name_prefix  = "${var.name}-"
  region       = var.region
  machine_type = var.machine_type
  tags         = [var.name]
  labels       = local.labels
  metadata     = local.metadata

  disk {
    source_image = var.source_image
    disk_size_gb = var.disk_size_gb
    disk_type    = var.disk_type
    auto_delete  = true
    boot         = true
  }

  network_interface {
    network    = var.network
    subnetwork = var.subnetwork
  }

  service_account {
    email  = google_service_account.luna.email
    scopes = ["cloud-platform"]
  }

  # A node must find its password readable when it boots.
  depends_on = [google_secret_manager_secret_version.passwd, google_secret_manager_secret_iam_member.read]

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  scheduling {
    automatic_restart   = true
    on_host_maintenance = "MIGRATE"
  }

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.api_port != var.health_port
      error_message = "api_port and health_port must differ."
    }
    precondition {
      condition     = var.tls_secret != null || (!var.require_tls && var.tls_client_ca_secret == null)
      error_message = "require_tls and tls_client_ca_secret need tls_secret: the server's certificate and key."
    }
  }
}

# For the load balancer: /readyz answers 200 once the startup SQL has run,
# 503 before and while draining, so a node that cannot serve gets no
# traffic.
resource "google_compute_health_check" "luna" {
  project             = var.project_id
  name                = "${var.name}-readyz"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 3

  http_health_check {
    port         = var.health_port
    request_path = "/readyz"
  }

  log_config {
    enable = false
  }
}

# For autohealing: /healthz answers 200 while the server runs, preload or
# not, so a node is recreated when its server is gone, never for a preload
# that takes long.
resource "google_compute_health_check" "healthz" {
  project             = var.project_id
  name                = "${var.name}-healthz"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 3

  http_health_check {
    port         = var.health_port
    request_path = "/healthz"
  }

  log_config {
    enable = false
  }
}

resource "google_compute_region_instance_group_manager" "luna" {
  project            = var.project_id
  name               = "${var.name}-mig"
  region             = var.region
  base_instance_name = var.name

  distribution_policy_zones = length(var.zones) == 0 ? null : var.zones

  # The autoscaler owns the size when there is one.
  target_size = var.autoscaling == null ? var.target_size : null

  version {
    name              = "luna"
    instance_template = google_compute_instance_template.luna.id
  }

  named_port {
    name = "luna"
    port = var.api_port
  }

  auto_healing_policies {
    health_check      = google_compute_health_check.healthz.id
    initial_delay_sec = var.autohealing_initial_delay_sec
  }

  # A new template adds up to max_surge_fixed new instances at a time and,
  # with max_unavailable_fixed = 0, never drops below the current size.
  update_policy {
    type                         = "PROACTIVE"
    minimal_action               = "REPLACE"
    instance_redistribution_type = "PROACTIVE"
    max_surge_fixed              = local.max_surge_fixed
    max_unavailable_fixed        = var.max_unavailable_fixed
    replacement_method           = "SUBSTITUTE"
  }

  wait_for_instances = false

  lifecycle {
    # Compute Engine's rule for regional groups: a fixed surge or
    # unavailable count is 0 or at least the number of zones.
    precondition {
      condition     = local.max_surge_fixed == 0 || local.max_surge_fixed >= local.zone_count
      error_message = "max_surge_fixed must be 0 or at least the number of zones (${local.zone_count}): Compute Engine refuses a fixed surge below that for a regional group."
    }
    precondition {
      condition     = var.max_unavailable_fixed == 0 || var.max_unavailable_fixed >= local.zone_count
      error_message = "max_unavailable_fixed must be 0 or at least the number of zones (${local.zone_count})."
    }
    precondition {
      condition     = local.max_surge_fixed > 0 || var.max_unavailable_fixed > 0
      error_message = "max_surge_fixed and max_unavailable_fixed are both 0: no instance could be replaced."
    }
  }
}

resource "google_compute_region_autoscaler" "luna" {
  count = var.autoscaling == null ? 0 : 1

  project = var.project_id
  name    = "${var.name}-autoscaler"
  region  = var.region
  target  = google_compute_region_instance_group_manager.luna.id

  autoscaling_policy {
    min_replicas    = var.autoscaling.min_replicas
    max_replicas    = var.autoscaling.max_replicas
    cooldown_period = var.autoscaling.cooldown_period

    cpu_utilization {
      target = var.autoscaling.cpu_target
    }
  }
}

# --- Firewall ------------------------------------------------------------------

resource "google_compute_firewall" "api" {
  count = length(var.allowed_cidrs) == 0 ? 0 : 1

  project       = var.project_id
  name          = "${var.name}-allow-api"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = var.allowed_cidrs
  target_tags   = [var.name]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.api_port)]
  }
}

# Health checks reach the side port; a passthrough load balancer's probes
# come from the same ranges.
resource "google_compute_firewall" "health_check" {
  project       = var.project_id
  name          = "${var.name}-allow-health-check"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = local.health_check_ranges
  target_tags   = [var.name]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.health_port)]
  }
}

# Operators reach the nodes, which have no external address, through IAP
# TCP forwarding to sshd; OS Login (enable-oslogin) decides who logs in.
resource "google_compute_firewall" "iap_ssh" {
  count = var.iap_ssh ? 1 : 0

  project       = var.project_id
  name          = "${var.name}-allow-iap-ssh"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = [local.iap_range]
  target_tags   = [var.name]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# --- Internal passthrough TCP load balancer --------------------------------------

resource "google_compute_region_backend_service" "luna" {
  count = var.internal_lb ? 1 : 0

  project               = var.project_id
  name                  = "${var.name}-ilb"
  region                = var.region
  protocol              = "TCP"
  load_balancing_scheme = "INTERNAL"
  health_checks         = [google_compute_health_check.luna.id]
  # Lets running queries finish when a node drains or is replaced.
  connection_draining_timeout_sec = 30

  backend {
    group          = google_compute_region_instance_group_manager.luna.instance_group
    balancing_mode = "CONNECTION"
  }
}

resource "google_compute_forwarding_rule" "luna" {
  count = var.internal_lb ? 1 : 0

  project               = var.project_id
  name                  = "${var.name}-ilb"
  region                = var.region
  load_balancing_scheme = "INTERNAL"
  ip_protocol           = "TCP"
  ports                 = [tostring(var.api_port)]
  network               = var.network
  subnetwork            = var.subnetwork
  backend_service       = google_compute_region_backend_service.luna[0].id
  labels                = local.labels
}
