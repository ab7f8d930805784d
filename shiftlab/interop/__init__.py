"""From AWS and back: configurations read from AWS's formats (CloudFormation,
Terraform, CodeDeploy) into a shiftlab config, and a rehearsed config written
back in them. Application layer: it reads and checks configs through
shiftlab.settings."""
