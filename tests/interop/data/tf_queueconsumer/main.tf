# An order worker that consumes an SQS queue: no load_balancer, no
# service_connect_configuration (a headless service), deployed blue/green by
# ECS. A Lambda lifecycle hook at PRODUCTION_TRAFFIC_SHIFT flips the
# parameter that says which revision consumes; an alarm on the queue's age
# and one on the workers' own failure metric roll a bad revision back.

variable "subnet_ids" {
  type    = list(string)
  default = ["subnet-0123456789abcdef0"]
}

variable "hook_role_arn" {
  type    = string
  default = "arn:aws:iam::123456789012:role/ecs-hooks"
}

resource "aws_sqs_queue" "orders" {
  name                       = "orders"
  visibility_timeout_seconds = 60
}

resource "aws_cloudwatch_metric_alarm" "oldest" {
  alarm_name          = "orders-oldest-message"
  alarm_description   = "The workers are not keeping up with the orders queue"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = "orders" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = 300
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "failures" {
  alarm_name          = "order-worker-failures"
  namespace           = "WorkQueue"
  metric_name         = "MessagesFailed"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_ecs_service" "worker" {
  name            = "order-worker"
  cluster         = "orders"
  task_definition = "order-worker:7"
  desired_count   = 3
  launch_type     = "FARGATE"

  deployment_configuration {
    strategy             = "BLUE_GREEN"
    bake_time_in_minutes = 10

    lifecycle_hook {
      hook_target_arn  = "arn:aws:lambda:us-east-1:123456789012:function:order-worker-activate"
      role_arn         = var.hook_role_arn
      lifecycle_stages = ["PRODUCTION_TRAFFIC_SHIFT"]
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  alarms {
    alarm_names = [aws_cloudwatch_metric_alarm.oldest.alarm_name, aws_cloudwatch_metric_alarm.failures.alarm_name]
    enable      = true
    rollback    = true
  }

  network_configuration {
    subnets = var.subnet_ids
  }
}
