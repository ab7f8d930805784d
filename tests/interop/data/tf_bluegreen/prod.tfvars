vpc_id            = "vpc-0123456789abcdef0"
subnet_ids        = ["subnet-0aaa", "subnet-0bbb"]
hook_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:smoke-test"
