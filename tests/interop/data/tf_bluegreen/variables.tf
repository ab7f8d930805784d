variable "name" {
  type    = string
  default = "web"
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "canary_percent" {
  type    = number
  default = 10
}

variable "hook_function_arn" {
  type        = string
  description = "The Lambda function that checks green before production traffic"
}
