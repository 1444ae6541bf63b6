terraform {
  # 1.5 brings `check` blocks (checks.tf); preconditions need 1.2.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100 is the first release with `data.aws_region.region` (the `name`
      # attribute is deprecated in 6.x); 7.x is untested.
      version = ">= 5.100, < 7.0"
    }
  }
}

provider "aws" {
  # null means: take the region from the environment (AWS_REGION, AWS_PROFILE).
  region = var.aws_region

  default_tags {
    tags = var.tags
  }
}
