output "instance_group" {
  description = "Self link of the regional instance group (for load balancer backends)."
  value       = google_compute_region_instance_group_manager.luna.instance_group
}

output "instance_group_manager" {
  description = "ID of the regional managed instance group."
  value       = google_compute_region_instance_group_manager.luna.id
}

output "instance_template" {
  description = "ID of the current instance template."
  value       = google_compute_instance_template.luna.id
}

output "service_account_email" {
  description = "Service account the instances run as; grant it access to further data."
  value       = google_service_account.luna.email
}

output "health_check" {
  description = "ID of the /readyz health check, for load balancer backends (the internal load balancer uses it)."
  value       = google_compute_health_check.luna.id
}

output "autohealing_health_check" {
  description = "ID of the /healthz health check the group autoheals on."
  value       = google_compute_health_check.healthz.id
}

output "api_port" {
  description = "Port of the SQL API (named port luna)."
  value       = var.api_port
}

output "internal_lb_address" {
  description = "IP address of the internal load balancer, or null without one."
  value       = var.internal_lb ? google_compute_forwarding_rule.luna[0].ip_address : null
}

output "passwd_secret" {
  description = "Secret Manager secret (projects/PROJECT/secrets/NAME) the nodes read the password from, or null without one."
  value       = local.passwd_secret
}
