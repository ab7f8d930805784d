# A TCP service behind a Network Load Balancer, deployed blue/green by ECS:
# the production listener (TLS to the tasks passes through it as TCP) and a
# test listener, each named as the "rule" ECS moves (an NLB's listeners have
# no rules). The AWS provider's arguments:
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb
# .../lb_listener (tcp_idle_timeout_seconds), .../lb_target_group (connection_termination,
# health_check.protocol), .../ecs_service.

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "idle_timeout" {
  type    = number
  default = 600
}

locals {
  name = "ledger"
}

resource "aws_lb" "nlb" {
  name               = "${local.name}-nlb"
  load_balancer_type = "network"
  internal           = true
  subnets            = var.subnet_ids

  enable_cross_zone_load_balancing = true
}

resource "aws_lb_target_group" "blue" {
  name                 = "${local.name}-blue"
  port                 = 7000
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 120
  connection_termination = true

  health_check {
    protocol            = "TCP"
    interval            = 15
    healthy_threshold   = 3
    unhealthy_threshold = 3
  }
}

resource "aws_lb_target_group" "green" {
  name                 = "${local.name}-green"
  port                 = 7000
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 120
  connection_termination = true

  health_check {
    protocol = "HTTP"
    path     = "/healthz"
    port     = "7001"
    matcher  = "200"
  }
}

resource "aws_lb_listener" "prod" {
  load_balancer_arn        = aws_lb.nlb.arn
  port                     = 443
  protocol                 = "TCP"
  tcp_idle_timeout_seconds = var.idle_timeout

  default_action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.blue.arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.green.arn
        weight = 0
      }
    }
  }
}

resource "aws_lb_listener" "test" {
  load_balancer_arn = aws_lb.nlb.arn
  port              = 8443
  protocol          = "TCP"

  default_action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.blue.arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.green.arn
        weight = 0
      }
    }
  }
}

resource "aws_ecs_service" "ledger" {
  name            = local.name
  cluster         = "payments"
  task_definition = "ledger:7"
  desired_count   = 3
  launch_type     = "FARGATE"

  deployment_configuration {
    strategy             = "BLUE_GREEN"
    bake_time_in_minutes = 5
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.blue.arn
    container_name   = "ledger"
    container_port   = 7000

    advanced_configuration {
      alternate_target_group_arn = aws_lb_target_group.green.arn
      production_listener_rule   = aws_lb_listener.prod.arn
      test_listener_rule         = aws_lb_listener.test.arn
      role_arn                   = "arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers"
    }
  }

  network_configuration {
    subnets = var.subnet_ids
  }
}
