# Plan-level checks of the module against a mock google provider: nothing
# reaches GCP. Run with `tofu test` after `tofu init` (see infra/ for the
# offline provider mirror).

mock_provider "google" {
  # A region of three zones, as europe-west1 has.
  mock_data "google_compute_zones" {
    defaults = {
      names = ["europe-west1-b", "europe-west1-c", "europe-west1-d"]
    }
  }
}

variables {
  project_id     = "luna-test-project"
  region         = "europe-west1"
  name           = "luna"
  allowed_cidrs  = ["10.10.0.0/16", "192.168.1.0/24"]
  buckets        = ["luna-data", "luna.shared_data"]
  passwd         = "correct horse battery"
  startup_script = "#!/bin/sh\necho startup\n"
  init_sql       = "CREATE TABLE trips AS SELECT * FROM read_parquet('gs://luna-data/trips/*.parquet');\n"
  release_url    = "https://releases.example.com/luna_1.0.0_amd64.deb"
  release_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

run "health_check_and_autohealing" {
  command = apply

  assert {
    condition     = google_compute_health_check.luna.http_health_check[0].request_path == "/readyz"
    error_message = "the health check must probe /readyz"
  }
  assert {
    condition     = google_compute_health_check.luna.http_health_check[0].port == 7689
    error_message = "the health check must probe the health port 7689 (LUNA_HEALTH_HOST_PORT)"
  }
  assert {
    condition     = length(google_compute_region_instance_group_manager.luna.auto_healing_policies) == 1
    error_message = "the group must have an autohealing policy"
  }
  assert {
    condition     = google_compute_region_instance_group_manager.luna.auto_healing_policies[0].health_check == google_compute_health_check.healthz.id
    error_message = "autohealing must use the /healthz health check, so a long preload is not taken for a dead node"
  }
  assert {
    condition     = google_compute_health_check.healthz.http_health_check[0].request_path == "/healthz" && google_compute_health_check.healthz.http_health_check[0].port == 7689
    error_message = "the autohealing check must probe /healthz on the health port"
  }
  assert {
    condition     = google_compute_region_instance_group_manager.luna.auto_healing_policies[0].initial_delay_sec == 300
    error_message = "autohealing must give a new instance 300s by default"
  }
  assert {
    condition     = google_compute_region_instance_group_manager.luna.region == "europe-west1"
    error_message = "the group must be regional"
  }
  assert {
    condition     = google_compute_region_instance_group_manager.luna.version[0].instance_template == google_compute_instance_template.luna.id
    error_message = "the group must run the module's instance template"
  }
}

run "named_port" {
  command = plan

  assert {
    condition     = length(google_compute_region_instance_group_manager.luna.named_port) == 1
    error_message = "the group must have exactly one named port"
  }
  assert {
    condition     = one([for p in google_compute_region_instance_group_manager.luna.named_port : p.port if p.name == "luna"]) == 7688
    error_message = "the named port luna must be 7688"
  }
  assert {
    condition     = google_compute_region_instance_group_manager.luna.target_size == 2
    error_message = "without autoscaling the group keeps target_size instances"
  }
  assert {
    condition     = length(google_compute_region_autoscaler.luna) == 0
    error_message = "no autoscaler unless asked for"
  }
  assert {
    condition     = length(google_compute_forwarding_rule.luna) == 0 && length(google_compute_region_backend_service.luna) == 0
    error_message = "no load balancer unless asked for"
  }
}

run "firewall" {
  command = plan

  assert {
    condition     = toset(google_compute_firewall.api[0].source_ranges) == toset(["10.10.0.0/16", "192.168.1.0/24"])
    error_message = "the API rule must admit exactly allowed_cidrs"
  }
  assert {
    condition     = one(google_compute_firewall.api[0].allow).protocol == "tcp" && one(google_compute_firewall.api[0].allow).ports == tolist(["7688"])
    error_message = "the API rule must open tcp/7688"
  }
  assert {
    condition     = toset(google_compute_firewall.health_check.source_ranges) == toset(["35.191.0.0/16", "130.211.0.0/22"])
    error_message = "the health check rule must admit Google's health check ranges"
  }
  assert {
    condition     = one(google_compute_firewall.health_check.allow).ports == tolist(["7689"])
    error_message = "the health check rule must open the health port"
  }
  assert {
    condition     = google_compute_firewall.api[0].target_tags == toset(["luna"]) && google_compute_instance_template.luna.tags == toset(["luna"])
    error_message = "the rules must target the instances' tag"
  }
}

run "no_firewall_without_cidrs" {
  command = plan

  variables {
    allowed_cidrs = []
  }

  assert {
    condition     = length(google_compute_firewall.api) == 0
    error_message = "no API rule without allowed_cidrs"
  }
}

# "Using IAP for TCP forwarding": a rule admitting 35.235.240.0/20, the
# range IAP forwards TCP from, to the port to reach, on the instances to
# reach; OS Login stays on, so IAM decides who logs in.
run "iap_ssh" {
  command = plan

  assert {
    condition     = length(google_compute_firewall.iap_ssh) == 1
    error_message = "the IAP SSH rule must be made by default"
  }
  assert {
    condition     = google_compute_firewall.iap_ssh[0].name == "luna-allow-iap-ssh" && google_compute_firewall.iap_ssh[0].direction == "INGRESS"
    error_message = "the IAP SSH rule must be the ingress rule luna-allow-iap-ssh"
  }
  assert {
    condition     = toset(google_compute_firewall.iap_ssh[0].source_ranges) == toset(["35.235.240.0/20"])
    error_message = "the IAP SSH rule must admit exactly IAP's TCP forwarding range 35.235.240.0/20"
  }
  assert {
    condition     = one(google_compute_firewall.iap_ssh[0].allow).protocol == "tcp" && one(google_compute_firewall.iap_ssh[0].allow).ports == tolist(["22"])
    error_message = "the IAP SSH rule must open tcp/22 and nothing else"
  }
  assert {
    condition     = google_compute_firewall.iap_ssh[0].target_tags == toset(["luna"]) && google_compute_firewall.iap_ssh[0].network == "default"
    error_message = "the IAP SSH rule must target the instances' tag on their network"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["enable-oslogin"] == "TRUE"
    error_message = "OS Login must stay on"
  }
}

run "no_iap_ssh" {
  command = plan

  variables {
    iap_ssh = false
  }

  assert {
    condition     = length(google_compute_firewall.iap_ssh) == 0
    error_message = "no IAP SSH rule with iap_ssh = false"
  }
}

run "metadata_and_identity" {
  command = plan

  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-init-sql"] == "CREATE TABLE trips AS SELECT * FROM read_parquet('gs://luna-data/trips/*.parquet');\n"
    error_message = "the startup SQL must be passed verbatim as metadata luna-init-sql"
  }
  assert {
    condition     = !contains(keys(google_compute_instance_template.luna.metadata), "luna-passwd")
    error_message = "the password must never be in instance metadata"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["startup-script"] == "#!/bin/sh\necho startup\n"
    error_message = "the startup script must be passed as metadata startup-script"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-passwd-from"] == "gcp-secretmanager:projects/luna-test-project/secrets/luna-passwd"
    error_message = "Luna must read its password from the module's Secret Manager secret"
  }
  assert {
    condition     = !contains(keys(google_compute_instance_template.luna.metadata), "luna-init-sql-from")
    error_message = "no secret startup SQL unless asked for"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-env"] == "LUNA_API_HOST_PORT=0.0.0.0:7688\nLUNA_HEALTH_HOST_PORT=0.0.0.0:7689"
    error_message = "luna-env must set the packaged ports"
  }
  assert {
    condition     = toset(keys(google_storage_bucket_iam_member.read)) == toset(["luna-data", "luna.shared_data"])
    error_message = "every listed bucket must be readable"
  }
  assert {
    condition     = alltrue([for m in google_storage_bucket_iam_member.read : m.role == "roles/storage.objectViewer"])
    error_message = "bucket access must be read-only"
  }
  assert {
    condition     = length(google_storage_bucket_iam_member.release) == 0
    error_message = "an https:// release needs no bucket access"
  }
  assert {
    condition     = google_compute_instance_template.luna.disk[0].source_image == "projects/debian-cloud/global/images/family/debian-12"
    error_message = "the default image must be Debian 12"
  }
  assert {
    condition     = google_service_account.luna.account_id == "luna-node" && google_compute_instance_template.luna.service_account[0].scopes == toset(["cloud-platform"])
    error_message = "the instances must run as the module's service account"
  }
}

run "password_in_secret_manager" {
  command = plan

  assert {
    condition     = google_secret_manager_secret.passwd[0].secret_id == "luna-passwd" && google_secret_manager_secret.passwd[0].project == "luna-test-project"
    error_message = "the module must store the password in the secret luna-passwd of the project"
  }
  assert {
    condition     = tostring(google_secret_manager_secret_version.passwd[0].secret_data_wo_version) == "1" && google_secret_manager_secret_version.passwd[0].secret_data == null
    error_message = "the password must be written through the write-only secret_data_wo, version 1"
  }
  assert {
    condition     = keys(google_secret_manager_secret_iam_member.read) == ["projects/luna-test-project/secrets/luna-passwd"]
    error_message = "exactly the password secret must be readable"
  }
  assert {
    condition     = alltrue([for m in google_secret_manager_secret_iam_member.read : m.role == "roles/secretmanager.secretAccessor" && m.member == "serviceAccount:${google_service_account.luna.email}"])
    error_message = "only the nodes' service account may read the secrets, and only read them"
  }
}

run "password_rotation" {
  command = plan

  variables {
    passwd_version = 2
  }

  assert {
    condition     = tostring(google_secret_manager_secret_version.passwd[0].secret_data_wo_version) == "2"
    error_message = "passwd_version must reach secret_data_wo_version, so that a new value is written"
  }
}

run "existing_secrets" {
  command = plan

  variables {
    passwd          = null
    passwd_secret   = "shared-luna-passwd"
    init_sql_secret = "projects/luna-secrets/secrets/luna-init-sql"
  }

  assert {
    condition     = length(google_secret_manager_secret.passwd) == 0 && length(google_secret_manager_secret_version.passwd) == 0
    error_message = "with passwd_secret the module must not make a secret"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-passwd-from"] == "gcp-secretmanager:projects/luna-test-project/secrets/shared-luna-passwd"
    error_message = "a short passwd_secret must be taken in the module's project"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-init-sql-from"] == "gcp-secretmanager:projects/luna-secrets/secrets/luna-init-sql"
    error_message = "the startup script must fetch the secret startup SQL from init_sql_secret"
  }
  assert {
    condition     = toset(keys(google_secret_manager_secret_iam_member.read)) == toset(["projects/luna-test-project/secrets/shared-luna-passwd", "projects/luna-secrets/secrets/luna-init-sql"])
    error_message = "the nodes must be able to read both secrets"
  }
}

run "tls_and_users_from_secret_manager" {
  command = plan

  variables {
    tls_secret           = "luna-tls"
    tls_client_ca_secret = "projects/luna-secrets/secrets/luna-client-ca"
    users_secret         = "luna-users"
    require_tls          = true
  }

  # The startup script fetches the certificate and CA into files and tells
  # the server where its users file lives; the nodes' service account can
  # read each secret and nothing else.
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-tls-from"] == "gcp-secretmanager:projects/luna-test-project/secrets/luna-tls"
    error_message = "the startup script must fetch the certificate from tls_secret"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-tls-client-ca-from"] == "gcp-secretmanager:projects/luna-secrets/secrets/luna-client-ca"
    error_message = "the startup script must fetch the client CA from tls_client_ca_secret"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-users-from"] == "gcp-secretmanager:projects/luna-test-project/secrets/luna-users"
    error_message = "the server must read its users from users_secret"
  }
  assert {
    condition     = strcontains(google_compute_instance_template.luna.metadata["luna-env"], "\nLUNA_REQUIRE_TLS=true")
    error_message = "require_tls must reach luna.env"
  }
  assert {
    condition = toset(keys(google_secret_manager_secret_iam_member.read)) == toset([
      "projects/luna-test-project/secrets/luna-passwd", "projects/luna-test-project/secrets/luna-tls",
      "projects/luna-secrets/secrets/luna-client-ca", "projects/luna-test-project/secrets/luna-users",
    ])
    error_message = "the nodes must be able to read the password, certificate, CA and users secrets"
  }
}

run "no_tls_by_default" {
  command = plan

  assert {
    condition     = !contains(keys(google_compute_instance_template.luna.metadata), "luna-tls-from") && !strcontains(google_compute_instance_template.luna.metadata["luna-env"], "LUNA_REQUIRE_TLS")
    error_message = "without tls_secret the nodes serve plain TCP"
  }
}

run "rejects_require_tls_without_certificate" {
  command = plan

  variables {
    require_tls = true
  }

  expect_failures = [google_compute_instance_template.luna]
}

run "rejects_tls_in_extra_env" {
  command = plan

  variables {
    extra_env = { LUNA_TLS_CERT_FILE = "/tmp/cert.pem" }
  }

  expect_failures = [var.extra_env]
}

run "release_from_a_bucket" {
  command = plan

  variables {
    release_url = "gs://luna-releases/v1.0.0/luna_1.0.0_amd64.deb"
  }

  assert {
    condition     = google_storage_bucket_iam_member.release[0].bucket == "luna-releases" && google_storage_bucket_iam_member.release[0].role == "roles/storage.objectViewer"
    error_message = "the nodes must be able to read a gs:// release"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-release-url"] == "gs://luna-releases/v1.0.0/luna_1.0.0_amd64.deb"
    error_message = "the release URL must be passed as it is"
  }
}

run "release_and_env" {
  command = plan

  variables {
    api_port    = 17688
    health_port = 17689
    extra_env = {
      LUNA_MEMORY_LIMIT   = "80%"
      LUNA_WATCH_INTERVAL = "5m"
    }
  }

  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-release-url"] == "https://releases.example.com/luna_1.0.0_amd64.deb"
    error_message = "the release URL must be passed as metadata luna-release-url"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-release-sha256"] == "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    error_message = "the release SHA-256 must be passed as metadata luna-release-sha256"
  }
  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-env"] == "LUNA_API_HOST_PORT=0.0.0.0:17688\nLUNA_HEALTH_HOST_PORT=0.0.0.0:17689\nLUNA_MEMORY_LIMIT=80%\nLUNA_WATCH_INTERVAL=5m"
    error_message = "luna-env must set the ports the group uses, then extra_env in key order"
  }
  assert {
    condition     = google_compute_health_check.luna.http_health_check[0].port == 17689
    error_message = "the health check must follow health_port"
  }
  assert {
    condition     = one([for p in google_compute_region_instance_group_manager.luna.named_port : p.port if p.name == "luna"]) == 17688
    error_message = "the named port must follow api_port"
  }
  assert {
    condition     = one(google_compute_firewall.api[0].allow).ports == tolist(["17688"]) && one(google_compute_firewall.health_check.allow).ports == tolist(["17689"])
    error_message = "the firewall rules must follow the ports"
  }
}

run "repository_startup_script" {
  command = plan

  variables {
    startup_script = null
  }

  assert {
    condition     = google_compute_instance_template.luna.metadata["startup-script"] == file("../../../scripts/startup-gcp-mig.sh")
    error_message = "by default the startup script must be the repository's scripts/startup-gcp-mig.sh"
  }
}

run "no_password" {
  command = plan

  variables {
    passwd    = null
    no_passwd = true
  }

  assert {
    condition     = google_compute_instance_template.luna.metadata["luna-passwd-from"] == "none"
    error_message = "without a password the startup script must be told none"
  }
  assert {
    condition     = length(google_secret_manager_secret.passwd) == 0 && length(google_secret_manager_secret_iam_member.read) == 0
    error_message = "no secret and no secret access without a password"
  }
}

run "autoscaler_and_load_balancer" {
  command = apply

  variables {
    internal_lb = true
    autoscaling = { min_replicas = 2, max_replicas = 6 }
  }

  assert {
    condition     = google_compute_region_autoscaler.luna[0].autoscaling_policy[0].min_replicas == 2 && google_compute_region_autoscaler.luna[0].autoscaling_policy[0].max_replicas == 6
    error_message = "the autoscaler must use the given bounds"
  }
  assert {
    condition     = google_compute_region_autoscaler.luna[0].autoscaling_policy[0].cpu_utilization[0].target == 0.6
    error_message = "the autoscaler must default to 60% CPU"
  }
  assert {
    condition     = google_compute_region_autoscaler.luna[0].target == google_compute_region_instance_group_manager.luna.id
    error_message = "the autoscaler must scale the group"
  }
  assert {
    condition     = google_compute_forwarding_rule.luna[0].load_balancing_scheme == "INTERNAL" && google_compute_forwarding_rule.luna[0].ports == toset(["7688"])
    error_message = "the internal load balancer must forward tcp/7688"
  }
  assert {
    condition     = google_compute_region_backend_service.luna[0].load_balancing_scheme == "INTERNAL" && google_compute_region_backend_service.luna[0].protocol == "TCP"
    error_message = "the backend must be an internal passthrough TCP service"
  }
  assert {
    condition     = google_compute_region_backend_service.luna[0].health_checks == toset([google_compute_health_check.luna.id])
    error_message = "the load balancer must use the /readyz health check"
  }
  assert {
    condition     = one(google_compute_region_backend_service.luna[0].backend).group == google_compute_region_instance_group_manager.luna.instance_group
    error_message = "the load balancer must send to the group"
  }
}

run "timings_and_rollout" {
  command = plan

  variables {
    autohealing_initial_delay_sec = 900
  }

  assert {
    condition     = google_compute_region_instance_group_manager.luna.auto_healing_policies[0].initial_delay_sec == 900
    error_message = "the initial delay must follow autohealing_initial_delay_sec"
  }
  assert {
    condition     = one(google_compute_region_instance_group_manager.luna.update_policy).max_surge_fixed == 3
    error_message = "without zones the surge must default to the region's number of zones"
  }
  assert {
    condition     = one(google_compute_region_instance_group_manager.luna.update_policy).max_unavailable_fixed == 0
    error_message = "a rolling update must keep every node serving by default"
  }
  assert {
    condition     = one(google_compute_region_instance_group_manager.luna.update_policy).type == "PROACTIVE" && one(google_compute_region_instance_group_manager.luna.update_policy).minimal_action == "REPLACE"
    error_message = "a new template must be rolled out proactively, replacing instances"
  }
}

run "rollout_in_two_zones" {
  command = plan

  variables {
    zones                 = ["europe-west1-b", "europe-west1-c"]
    max_unavailable_fixed = 2
  }

  assert {
    condition     = one(google_compute_region_instance_group_manager.luna.update_policy).max_surge_fixed == 2
    error_message = "with two zones the surge must default to 2"
  }
  assert {
    condition     = one(google_compute_region_instance_group_manager.luna.update_policy).max_unavailable_fixed == 2
    error_message = "max_unavailable_fixed must be passed on"
  }
  assert {
    condition     = toset(google_compute_region_instance_group_manager.luna.distribution_policy_zones) == toset(["europe-west1-b", "europe-west1-c"])
    error_message = "the group must spread over the given zones"
  }
}

run "load_balancer_on_readyz" {
  command = plan

  variables {
    internal_lb = true
  }

  assert {
    condition     = google_compute_health_check.luna.http_health_check[0].request_path == "/readyz"
    error_message = "the load balancer's check must probe /readyz"
  }
  assert {
    condition     = google_compute_region_backend_service.luna[0].health_checks == toset([google_compute_health_check.luna.id])
    error_message = "the backend must route on /readyz, not on the autohealing check"
  }
}

# --- Validation: bad input is refused before anything is planned ------------------

run "rejects_surge_below_zone_count" {
  command = plan
  variables {
    zones           = ["europe-west1-b", "europe-west1-c"]
    max_surge_fixed = 1
  }
  expect_failures = [google_compute_region_instance_group_manager.luna]
}

run "rejects_surge_below_region_zone_count" {
  command = plan
  variables {
    max_surge_fixed = 2
  }
  expect_failures = [google_compute_region_instance_group_manager.luna]
}

run "rejects_unavailable_below_zone_count" {
  command = plan
  variables {
    max_unavailable_fixed = 1
  }
  expect_failures = [google_compute_region_instance_group_manager.luna]
}

run "rejects_no_surge_and_no_unavailable" {
  command = plan
  variables {
    max_surge_fixed = 0
  }
  expect_failures = [google_compute_region_instance_group_manager.luna]
}

run "rejects_negative_surge" {
  command = plan
  variables {
    max_surge_fixed = -1
  }
  expect_failures = [var.max_surge_fixed]
}

run "rejects_fractional_unavailable" {
  command = plan
  variables {
    max_unavailable_fixed = 1.5
  }
  expect_failures = [var.max_unavailable_fixed]
}

run "rejects_long_initial_delay" {
  command = plan
  variables {
    autohealing_initial_delay_sec = 3601
  }
  expect_failures = [var.autohealing_initial_delay_sec]
}

run "rejects_bad_cidr" {
  command = plan
  variables {
    allowed_cidrs = ["10.0.0.0/33"]
  }
  expect_failures = [var.allowed_cidrs]
}

run "rejects_non_cidr" {
  command = plan
  variables {
    allowed_cidrs = ["everyone"]
  }
  expect_failures = [var.allowed_cidrs]
}

run "rejects_api_port_out_of_range" {
  command = plan
  variables {
    api_port = 70000
  }
  expect_failures = [var.api_port]
}

run "rejects_health_port_zero" {
  command = plan
  variables {
    health_port = 0
  }
  expect_failures = [var.health_port]
}

run "rejects_empty_bucket_name" {
  command = plan
  variables {
    buckets = [""]
  }
  expect_failures = [var.buckets]
}

run "rejects_bucket_url" {
  command = plan
  variables {
    buckets = ["gs://luna-data"]
  }
  expect_failures = [var.buckets]
}

run "rejects_bad_machine_type" {
  command = plan
  variables {
    machine_type = "N2 Highmem"
  }
  expect_failures = [var.machine_type]
}

run "rejects_zone_as_region" {
  command = plan
  variables {
    region = "europe-west1-b"
  }
  expect_failures = [var.region]
}

run "rejects_bad_project_id" {
  command = plan
  variables {
    project_id = "Luna_Project"
  }
  expect_failures = [var.project_id]
}

run "rejects_bad_name" {
  command = plan
  variables {
    name = "Luna-"
  }
  expect_failures = [var.name]
}

run "rejects_http_release_url" {
  command = plan
  variables {
    release_url = "http://releases.example.com/luna.deb"
  }
  expect_failures = [var.release_url]
}

run "rejects_short_sha256" {
  command = plan
  variables {
    release_sha256 = "abc123"
  }
  expect_failures = [var.release_sha256]
}

run "rejects_same_ports" {
  command = plan
  variables {
    health_port = 7688
  }
  expect_failures = [google_compute_instance_template.luna]
}

run "rejects_password_in_extra_env" {
  command = plan
  variables {
    extra_env = { LUNA_PASSWD = "sneaky" }
  }
  expect_failures = [var.extra_env]
}

run "rejects_non_luna_setting" {
  command = plan
  variables {
    extra_env = { PATH = "/tmp" }
  }
  expect_failures = [var.extra_env]
}

run "rejects_multiline_setting" {
  command = plan
  variables {
    extra_env = { LUNA_MEMORY_LIMIT = "4GB\nLUNA_PASSWD=x" }
  }
  expect_failures = [var.extra_env]
}

run "rejects_empty_release_url" {
  command = plan
  variables {
    release_url = ""
  }
  expect_failures = [var.release_url]
}

run "rejects_missing_password" {
  command = plan
  variables {
    passwd = null
  }
  expect_failures = [google_secret_manager_secret_version.passwd]
}

run "rejects_bad_passwd_secret" {
  command = plan
  variables {
    passwd_secret = "projects/luna-test-project/secrets/pw/versions/1"
  }
  expect_failures = [var.passwd_secret]
}

run "rejects_s3_release_url" {
  command = plan
  variables {
    release_url = "s3://luna-releases/luna.deb"
  }
  expect_failures = [var.release_url]
}

run "rejects_short_password" {
  command = plan
  variables {
    passwd = "short"
  }
  expect_failures = [var.passwd]
}

run "rejects_oversized_init_sql" {
  command = plan
  variables {
    init_sql = format("%0262145d", 0)
  }
  expect_failures = [var.init_sql]
}

run "rejects_inverted_autoscaling" {
  command = plan
  variables {
    autoscaling = { min_replicas = 5, max_replicas = 2 }
  }
  expect_failures = [var.autoscaling]
}

run "rejects_small_disk" {
  command = plan
  variables {
    disk_size_gb = 5
  }
  expect_failures = [var.disk_size_gb]
}
