"""From AWS and back: read what users already describe AWS's way
(CloudFormation and CDK templates; Terraform and CodeDeploy in their own
modules) into a shiftlab config, and write a rehearsed config back out as
AWS's APIs and CloudFormation take it.

Every importer returns the config as a dict plus a `report.Report` (what was
mapped, what was ignored and why, what needs a local answer) and raises
`report.ImportProblem` naming the resource and property it cannot read; the
config is written with `report.write_atomically`, so a refused input never
leaves a half-written file.
"""
