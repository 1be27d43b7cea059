output "address" {
  description = "Where clients connect: the internal load balancer and the API port."
  value       = "${module.luna.nlb_dns_name}:${module.luna.api_port}"
}

output "passwd_parameter" {
  description = "SSM parameter holding the password."
  value       = aws_ssm_parameter.passwd.name
}

output "autoscaling_group_name" {
  description = "The group, for luna-deploy asg status/logs/restart --name (e.g. logs --via ssm)."
  value       = module.luna.autoscaling_group_name
}
