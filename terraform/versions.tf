terraform {
  # 1.5 brings `check` blocks (checks.tf); preconditions need 1.2.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: `data.aws_region.current.region` does not exist before 6.0
      # (5.x has only `name`, deprecated in 6.x). The floor is 6.25 because
      # scripts/check-terraform.sh checks the configuration against the
      # provider's schema at both ends of this range, and 6.25.0 is the
      # oldest 6.x whose schema it has (terraform/tests/provider_schemas.json);
      # 7.x is untested.
      version = ">= 6.25, < 7.0"
    }
  }
}

provider "aws" {
  # null means: take the region from the environment (AWS_REGION, AWS_PROFILE).
  # Tags are set on each resource (var.tags), not through default_tags, so
  # that they also apply when this directory is used as a module.
  region = var.aws_region
}
