# A fleet of three Luna nodes behind an internal load balancer, each loading
# the same table from Cloud Storage at boot.
module "luna" {
  source = "../../modules/gcp-mig"

  project_id     = var.project_id
  region         = var.region
  name           = "luna"
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
  passwd                        = var.passwd
  internal_lb                   = true

  init_sql = <<-SQL
    CREATE TABLE trips AS
      SELECT * FROM read_parquet('gs://${var.data_bucket}/trips/*.parquet');
  SQL
}
