output "address" {
  description = "Where clients connect: the internal load balancer and the API port."
  value       = "${module.luna.internal_lb_address}:${module.luna.api_port}"
}

output "service_account_email" {
  description = "Service account of the nodes."
  value       = module.luna.service_account_email
}

output "passwd_secret" {
  description = "Secret Manager secret holding the password (gcloud secrets versions access latest --secret=...)."
  value       = module.luna.passwd_secret
}
