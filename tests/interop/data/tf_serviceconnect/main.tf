# A catalog service offered in a Service Connect namespace, deployed canary by
# ECS: clients call http://catalog:8080; requests with x-canary: yes reach the
# new revision first. No load balancer. The provider's arguments:
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ecs_service#service_connect_configuration

variable "subnet_ids" {
  type    = list(string)
  default = ["subnet-0123456789abcdef0"]
}

resource "aws_service_discovery_http_namespace" "shop" {
  name = "shop"
}

resource "aws_ecs_service" "catalog" {
  name            = "catalog"
  cluster         = "shop"
  task_definition = "catalog:3"
  desired_count   = 2
  launch_type     = "FARGATE"

  deployment_configuration {
    strategy             = "CANARY"
    bake_time_in_minutes = 2
    canary_configuration {
      canary_percent              = 20
      canary_bake_time_in_minutes = 5
    }
  }

  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.shop.name

    service {
      port_name             = "http"
      discovery_name        = "catalog"
      ingress_port_override = 18080

      client_alias {
        port     = 8080
        dns_name = "catalog"

        test_traffic_rules {
          header {
            name = "x-canary"
            value {
              exact = "yes"
            }
          }
        }
      }

      timeout {
        idle_timeout_seconds        = 120
        per_request_timeout_seconds = 15
      }
    }

    log_configuration {
      log_driver = "awslogs"
      options = {
        "awslogs-group" = "/ecs/shop/service-connect"
      }
    }
  }

  network_configuration {
    subnets = var.subnet_ids
  }
}
