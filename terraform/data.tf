# Where we are deploying: used to build ARNs without hard-coding the
# partition (aws, aws-cn, aws-us-gov), region or account.

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}
