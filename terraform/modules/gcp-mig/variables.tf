variable "project_id" {
  description = "Project the fleet runs in."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the regional managed instance group, e.g. europe-west1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a GCP region such as europe-west1 or us-central1 (not a zone)."
  }
}

variable "name" {
  description = "Prefix of every resource name, and the network tag of the instances."
  type        = string
  default     = "luna"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$", var.name))
    error_message = "name must be 1 to 20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "network" {
  description = "VPC network (name or self link) the instances and firewall rules attach to."
  type        = string
  default     = "default"

  validation {
    condition     = length(trimspace(var.network)) > 0
    error_message = "network must not be empty."
  }
}

variable "subnetwork" {
  description = "Subnetwork (name or self link) in the region; null uses the network's automatic subnetwork."
  type        = string
  default     = null
}

variable "zones" {
  description = "Zones of the region the group spreads over; empty lets GCP pick."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for z in var.zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "zones must be GCP zones such as europe-west1-b."
  }
}

variable "machine_type" {
  description = "Machine type of the instances. Luna holds its tables in memory: size memory for the preloaded data."
  type        = string
  default     = "n2-highmem-4"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)+$", var.machine_type))
    error_message = "machine_type must be a GCP machine type such as n2-highmem-4, e2-standard-2 or n2-custom-4-16384."
  }
}

variable "source_image" {
  description = "Boot image: a stock Debian 12 image, on which the startup script installs release_url at first boot, or the Luna image built by packer/ (e.g. projects/PROJECT/global/images/family/luna), which already holds that version."
  type        = string
  default     = "projects/debian-cloud/global/images/family/debian-12"

  validation {
    condition     = length(trimspace(var.source_image)) > 0
    error_message = "source_image must not be empty."
  }
}

variable "disk_size_gb" {
  description = "Boot disk size in GB; also holds DuckDB's spill directory."
  type        = number
  default     = 50

  validation {
    condition     = var.disk_size_gb >= 10 && var.disk_size_gb <= 65536 && floor(var.disk_size_gb) == var.disk_size_gb
    error_message = "disk_size_gb must be a whole number from 10 to 65536."
  }
}

variable "disk_type" {
  description = "Boot disk type."
  type        = string
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.disk_type)
    error_message = "disk_type must be one of pd-standard, pd-balanced, pd-ssd, hyperdisk-balanced."
  }
}

variable "target_size" {
  description = "Number of instances when autoscaling is off."
  type        = number
  default     = 2

  validation {
    condition     = var.target_size >= 0 && var.target_size <= 1000 && floor(var.target_size) == var.target_size
    error_message = "target_size must be a whole number from 0 to 1000."
  }
}

variable "autoscaling" {
  description = "Autoscaler on CPU utilisation; null keeps target_size instances. cooldown_period (seconds) is the autoscaler's warm-up: how long a new instance's CPU is ignored; make it at least the boot plus the longest preload."
  type = object({
    min_replicas    = number
    max_replicas    = number
    cpu_target      = optional(number, 0.6)
    cooldown_period = optional(number, 300)
  })
  default = null

  validation {
    condition = var.autoscaling == null ? true : (
      var.autoscaling.min_replicas >= 1 &&
      var.autoscaling.max_replicas >= var.autoscaling.min_replicas &&
      var.autoscaling.max_replicas <= 1000 &&
      var.autoscaling.cpu_target > 0 && var.autoscaling.cpu_target < 1
    )
    error_message = "autoscaling needs 1 <= min_replicas <= max_replicas <= 1000 and 0 < cpu_target < 1."
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

variable "iap_ssh" {
  description = "Admit IAP TCP forwarding (Google's range 35.235.240.0/20) to SSH (tcp:22) on the nodes, which have no external address, so operators reach them through IAP (luna-deploy mig logs/restart --via iap, gcloud compute ssh --tunnel-through-iap). Who may open a tunnel is IAM's decision: roles/iap.tunnelResourceAccessor, with OS Login (on) roles/compute.osAdminLogin and roles/iam.serviceAccountUser on the nodes' service account."
  type        = bool
  default     = true
}

variable "buckets" {
  description = "Cloud Storage buckets the instances may read (gs:// URLs in the startup SQL)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for b in var.buckets : can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", b))])
    error_message = "buckets must hold bucket names (3 to 222 lowercase letters, digits, dots, hyphens or underscores; no gs:// prefix), none empty."
  }
}

variable "passwd" {
  description = "Password clients must send. The module stores it in the Secret Manager secret <name>-passwd through a write-only argument, so it is in neither the state nor a plan (an ephemeral variable: pass it at every plan and apply, e.g. TF_VAR_passwd), and only the nodes' service account may read it; Luna reads it at every start (--passwd-from gcp-secretmanager). Unused with passwd_secret or no_passwd."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.passwd == null ? true : (length(var.passwd) >= 8 && !can(regex("[\r\n]", var.passwd)))
    error_message = "passwd must be at least 8 characters without line breaks."
  }
}

variable "passwd_version" {
  description = "Version of passwd stored in Secret Manager: the write-only value is sent again only when this changes, so increase it to rotate the password (nodes read the latest version at their next start)."
  type        = number
  default     = 1

  validation {
    condition     = var.passwd_version >= 1 && floor(var.passwd_version) == var.passwd_version
    error_message = "passwd_version must be a whole number, 1 or more."
  }
}

variable "passwd_secret" {
  description = "An existing Secret Manager secret holding the password (its latest version), instead of passwd: NAME in project_id, or projects/PROJECT/secrets/NAME. The nodes' service account gets roles/secretmanager.secretAccessor on it."
  type        = string
  default     = null

  validation {
    condition     = var.passwd_secret == null ? true : can(regex("^(projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/secrets/)?[A-Za-z0-9_-]{1,255}$", var.passwd_secret))
    error_message = "passwd_secret must be a secret name (letters, digits, - and _) or projects/PROJECT/secrets/NAME."
  }
}

variable "no_passwd" {
  description = "Run without authentication: any client that reaches the API port may query. Only for tests on a private network."
  type        = bool
  default     = false
}

variable "init_sql" {
  description = "Startup SQL every instance runs before serving (metadata attribute luna-init-sql, written to /etc/luna/init.d), so every node preloads the same tables. Instance metadata is readable by anyone with compute.instances.get and every process on the VM: put credentials in init_sql_secret instead."
  type        = string
  default     = ""

  validation {
    condition     = length(var.init_sql) <= 262144
    error_message = "init_sql must be at most 256 KiB (the metadata value limit); load larger data from a bucket instead."
  }
}

variable "release_url" {
  description = "URL of the Luna .deb (luna_<version>_amd64.deb) the startup script installs: gs://BUCKET/OBJECT, read with the nodes' service account (granted roles/storage.objectViewer on the bucket), or https://. A presigned https:// URL expires: nodes created later (autohealing, scaling, a rollout) then cannot install it. On the Luna image, name the package it holds: nothing is downloaded."
  type        = string

  validation {
    condition     = can(regex("^(https://[^[:space:]'\"]+|gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^[:space:]'\"]+)$", var.release_url))
    error_message = "release_url must be an https:// or gs://BUCKET/OBJECT URL without spaces or quotes."
  }
}

variable "init_sql_secret" {
  description = "A Secret Manager secret holding startup SQL with credentials (CREATE SECRET ... KEY_ID, SECRET), which init_sql, being instance metadata, must not carry: NAME in project_id, or projects/PROJECT/secrets/NAME. The startup script fetches its latest version at every boot into /etc/luna/init.d/40-secret.sql (readable by root and the service only), run before init_sql; the nodes' service account gets roles/secretmanager.secretAccessor on it."
  type        = string
  default     = null

  validation {
    condition     = var.init_sql_secret == null ? true : can(regex("^(projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/secrets/)?[A-Za-z0-9_-]{1,255}$", var.init_sql_secret))
    error_message = "init_sql_secret must be a secret name (letters, digits, - and _) or projects/PROJECT/secrets/NAME."
  }
}

variable "tls_secret" {
  description = "TLS on the API port: a Secret Manager secret holding the server's certificate (chain) and its private key, both PEM, in one value. NAME in project_id, or projects/PROJECT/secrets/NAME. The startup script fetches its latest version at every boot into /etc/luna/tls/server.pem (root and the service only); a renewed certificate reaches a running node when the startup script runs again (sudo systemctl restart luna-configure@gcp-mig), without a restart of luna. The nodes' service account gets roles/secretmanager.secretAccessor on it. Plain and TLS clients share the port unless require_tls."
  type        = string
  default     = null

  validation {
    condition     = var.tls_secret == null ? true : can(regex("^(projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/secrets/)?[A-Za-z0-9_-]{1,255}$", var.tls_secret))
    error_message = "tls_secret must be a secret name (letters, digits, - and _) or projects/PROJECT/secrets/NAME."
  }
}

variable "tls_client_ca_secret" {
  description = "Mutual TLS: a Secret Manager secret holding the CA certificates (PEM) that sign client certificates; a client without one is refused. Needs tls_secret. NAME in project_id, or projects/PROJECT/secrets/NAME."
  type        = string
  default     = null

  validation {
    condition     = var.tls_client_ca_secret == null ? true : can(regex("^(projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/secrets/)?[A-Za-z0-9_-]{1,255}$", var.tls_client_ca_secret))
    error_message = "tls_client_ca_secret must be a secret name (letters, digits, - and _) or projects/PROJECT/secrets/NAME."
  }
}

variable "require_tls" {
  description = "Refuse plain TCP clients on the API port (LUNA_REQUIRE_TLS): every client must speak TLS. Needs tls_secret. The load balancer's health check uses the health port and is not affected."
  type        = bool
  default     = false
}

variable "users_secret" {
  description = "Named users with roles (read, write, admin): a Secret Manager secret holding a users file as `luna user add` writes it (bcrypt hashes, never passwords). Luna reads it at every start and on reload (--users-from gcp-secretmanager); clients send AUTH <user> <password>. NAME in project_id, or projects/PROJECT/secrets/NAME. The nodes' service account gets roles/secretmanager.secretAccessor on it."
  type        = string
  default     = null

  validation {
    condition     = var.users_secret == null ? true : can(regex("^(projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/secrets/)?[A-Za-z0-9_-]{1,255}$", var.users_secret))
    error_message = "users_secret must be a secret name (letters, digits, - and _) or projects/PROJECT/secrets/NAME."
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
      can(regex("^LUNA_[A-Z0-9_]+$", k)) && !contains(["LUNA_PASSWD", "LUNA_PASSWD_FILE", "LUNA_PASSWD_FROM", "LUNA_API_HOST_PORT", "LUNA_HEALTH_HOST_PORT", "LUNA_REQUIRE_TLS", "LUNA_TLS_CERT_FILE", "LUNA_TLS_KEY_FILE", "LUNA_TLS_CLIENT_CA_FILE", "LUNA_USERS_FILE", "LUNA_USERS_FROM"], k) && !can(regex("[\r\n]", v))
    ])
    error_message = "extra_env keys must be LUNA_* settings other than the password, port, TLS and users settings (which have their own variables), with one-line values."
  }
}

variable "startup_script" {
  description = "Startup script content; null uses scripts/startup-gcp-mig.sh from this repository."
  type        = string
  default     = null
}

variable "autohealing_initial_delay_sec" {
  description = "Seconds autohealing leaves a new instance alone: boot, the startup script's install and the server's start, until /healthz answers. Autohealing probes /healthz, which answers during the preload, so the preload need not fit in it; measure it as the time from the instance's creation to the server's \"health endpoints listening\" log line (journalctl -u luna), and add a margin."
  type        = number
  default     = 300

  validation {
    condition     = var.autohealing_initial_delay_sec >= 0 && var.autohealing_initial_delay_sec <= 3600 && floor(var.autohealing_initial_delay_sec) == var.autohealing_initial_delay_sec
    error_message = "autohealing_initial_delay_sec must be a whole number from 0 to 3600 (Compute Engine's range)."
  }
}

variable "max_surge_fixed" {
  description = "Instances a rolling update may create above the group's size. A regional group needs 0 or at least its number of zones (var.zones, or all zones of the region when that is empty); null means one per zone."
  type        = number
  default     = null

  validation {
    condition     = var.max_surge_fixed == null ? true : (var.max_surge_fixed >= 0 && var.max_surge_fixed <= 1000 && floor(var.max_surge_fixed) == var.max_surge_fixed)
    error_message = "max_surge_fixed must be a whole number from 0 to 1000, or null."
  }
}

variable "max_unavailable_fixed" {
  description = "Instances a rolling update may take out of service at once. 0 (the default) keeps every node serving until its replacement is up; otherwise at least the number of zones."
  type        = number
  default     = 0

  validation {
    condition     = var.max_unavailable_fixed >= 0 && var.max_unavailable_fixed <= 1000 && floor(var.max_unavailable_fixed) == var.max_unavailable_fixed
    error_message = "max_unavailable_fixed must be a whole number from 0 to 1000."
  }
}

variable "internal_lb" {
  description = "Create an internal passthrough TCP load balancer in front of the group on the API port."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels added to the instances and the load balancer."
  type        = map(string)
  default     = {}
}
