output "autoscaling_group_name" {
  description = "Name of the Auto Scaling group."
  value       = aws_autoscaling_group.luna.name
}

output "launch_template_id" {
  description = "ID of the launch template."
  value       = aws_launch_template.luna.id
}

output "security_group_id" {
  description = "Security group of the instances; add rules to it for further clients."
  value       = aws_security_group.luna.id
}

output "role_arn" {
  description = "IAM role the instances run as; attach further policies to it."
  value       = aws_iam_role.luna.arn
}

output "api_port" {
  description = "Port of the SQL API."
  value       = var.api_port
}

output "nlb_dns_name" {
  description = "DNS name of the internal load balancer, or null without one."
  value       = var.internal_nlb ? aws_lb.luna[0].dns_name : null
}

output "target_group_arn" {
  description = "Target group health-checking /readyz, or null without the load balancer."
  value       = var.internal_nlb ? aws_lb_target_group.luna[0].arn : null
}
