# A fleet of three Luna nodes behind an internal load balancer, each loading
# the same table from Cloud Storage at boot, with the password in Secret
# Manager.
#
# The nodes have no external address. They reach Google's APIs (Secret
# Manager for the password, Cloud Storage for a gs:// release and the data,
# Cloud Logging) through Private Google Access on their subnet, and the
# internet (an https:// release URL, Debian's mirrors should apt need a
# dependency) through Cloud NAT. On an existing network, enable Private
# Google Access on the nodes' subnet and give the region a Cloud NAT (or
# use a gs:// release and the Luna image, which need no internet at all).
resource "google_compute_network" "luna" {
  name                    = "luna"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "luna" {
  name                     = "luna-${var.region}"
  region                   = var.region
  network                  = google_compute_network.luna.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
}

resource "google_compute_router" "luna" {
  name    = "luna-nat"
  region  = var.region
  network = google_compute_network.luna.id
}

resource "google_compute_router_nat" "luna" {
  name                               = "luna-nat"
  region                             = var.region
  router                             = google_compute_router.luna.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.luna.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

module "luna" {
  source = "../../modules/gcp-mig"

  project_id     = var.project_id
  region         = var.region
  name           = "luna"
  network        = google_compute_network.luna.self_link
  subnetwork     = google_compute_subnetwork.luna.self_link
  machine_type   = "n2-highmem-4"
  source_image   = var.source_image
  release_url    = var.release_url
  release_sha256 = var.release_sha256
  target_size    = 3
  # Boot + install + the server's start, until /healthz answers; the
  # preload itself only holds back /readyz, which the load balancer uses.
  autohealing_initial_delay_sec = 300
  allowed_cidrs                 = var.client_cidrs
  buckets                       = [var.data_bucket]
  # Stored in the Secret Manager secret luna-passwd (write-only: not in the
  # state); increase passwd_version to rotate it.
  passwd         = var.passwd
  passwd_version = var.passwd_version
  internal_lb    = true

  init_sql = <<-SQL
    CREATE TABLE trips AS
      SELECT * FROM read_parquet('gs://${var.data_bucket}/trips/*.parquet');
  SQL

  # The nodes' first boot needs their route to the internet and to Google's
  # APIs.
  depends_on = [google_compute_router_nat.luna]
}
