# Optional (create_cluster = true): the Aurora PostgreSQL Serverless v2
# cluster itself, private, in subnet_ids: IAM database authentication on, the
# master password kept by RDS in Secrets Manager (nobody types it), storage
# encrypted, deletion protection, auto-pause at 0 ACU, and the Data API (HTTP
# endpoint, cluster_data_api) for the one-time set-up by
# scripts/bootstrap-db.sh, which needs no network path to the cluster. Only
# the functions' security group may connect to it; the functions may connect
# to it, and to the clusters of dedicated databases listed for them.

data "aws_subnet" "cluster" {
  count = local.create_cluster ? 1 : 0

  id = element(concat(var.subnet_ids, ["subnet-unset"]), 0)

  lifecycle {
    precondition {
      condition     = length(var.subnet_ids) >= 2
      error_message = "create_cluster needs subnet_ids: two or more private subnets of the VPC, in different availability zones (a DB subnet group spans at least two)."
    }
  }
}

# The engine version: the newest available minor of cluster_engine_version
# (a major version by default), so that a new deployment never asks for a
# minor version AWS has retired. RDS upgrades minors afterwards, and the
# cluster ignores the difference (lifecycle below).
data "aws_rds_engine_version" "cluster" {
  count = local.create_cluster ? 1 : 0

  engine  = "aurora-postgresql"
  version = var.cluster_engine_version
  latest  = true

  lifecycle {
    # Auto-pause (a minimum of 0 ACU) needs 13.15, 14.12, 15.7, 16.3 or later
    # (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html);
    # below that RDS refuses the capacity, after the plan.
    postcondition {
      condition     = var.cluster_min_acu > 0 || tonumber(try(split(".", self.version_actual)[1], "0")) >= lookup(local.auto_pause_min_minor_version, split(".", self.version_actual)[0], 0)
      error_message = "cluster_min_acu = 0 (auto-pause) needs Aurora PostgreSQL 16.3, 15.7, 14.12 or 13.15 or later in its major version; cluster_engine_version = \"${var.cluster_engine_version}\" is ${self.version_actual}. Set cluster_engine_version to a major version (\"16\") for its newest minor, or cluster_min_acu to 0.5 or more."
    }
  }
}

resource "aws_db_subnet_group" "this" {
  count = local.create_cluster ? 1 : 0

  name        = var.name
  description = "Subnets of the ${var.name} Aurora cluster"
  subnet_ids  = var.subnet_ids
  tags        = local.tags
}

resource "aws_security_group" "cluster" {
  count = local.create_cluster ? 1 : 0

  name        = "${var.name}-cluster"
  description = "Aurora cluster of ${var.name}: PostgreSQL from the functions only"
  vpc_id      = data.aws_subnet.cluster[0].vpc_id
  tags        = local.tags
}

resource "aws_security_group" "functions" {
  count = local.create_cluster ? 1 : 0

  name        = "${var.name}-functions"
  description = "Lambda functions of ${var.name}: out to the Aurora cluster only"
  vpc_id      = data.aws_subnet.cluster[0].vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "cluster_from_functions" {
  count = local.create_cluster ? 1 : 0

  security_group_id            = aws_security_group.cluster[0].id
  referenced_security_group_id = aws_security_group.functions[0].id
  description                  = "PostgreSQL from the ${var.name} functions"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "functions_to_cluster" {
  count = local.create_cluster ? 1 : 0

  security_group_id            = aws_security_group.functions[0].id
  referenced_security_group_id = aws_security_group.cluster[0].id
  description                  = "PostgreSQL to the ${var.name} Aurora cluster"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = local.tags
}

# Silo tenants on other clusters (dedicated_database_users): the functions'
# group lets them out to those clusters too, by the clusters' security groups
# (same VPC, or a peered one) or by CIDR. Each of those clusters' own groups
# must admit TCP 5432 from this one (output functions_security_group_id).
# https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html
resource "aws_vpc_security_group_egress_rule" "functions_to_dedicated_by_group" {
  for_each = local.create_cluster ? toset(var.dedicated_database_security_group_ids) : toset([])

  security_group_id            = aws_security_group.functions[0].id
  referenced_security_group_id = each.value
  description                  = "PostgreSQL to a dedicated database's cluster (silo tenants of ${var.name})"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "functions_to_dedicated_by_cidr" {
  for_each = local.create_cluster ? toset(var.dedicated_database_cidr_blocks) : toset([])

  security_group_id = aws_security_group.functions[0].id
  cidr_ipv4         = each.value
  description       = "PostgreSQL to a dedicated database's cluster (silo tenants of ${var.name})"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  tags              = local.tags
}

# Created before the cluster so that Terraform owns its retention (RDS would
# create it on first export and keep the logs forever).
resource "aws_cloudwatch_log_group" "cluster" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, 14 days by default to keep a starter deployment cheap; set 365 or more where compliance requires a year of logs.
  count = local.create_cluster ? 1 : 0

  name              = "/aws/rds/cluster/${var.name}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = local.tags
}

# A suffix for the final snapshot, made once per created cluster (the id of a
# terraform_data is a random UUID), so that the snapshot of a destroyed
# cluster does not block the next cluster of the same name from being
# destroyed: a fixed `<name>-final` fails the second create/destroy cycle
# (DBClusterSnapshotAlreadyExistsFault,
# https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html).
# Replaced with what replaces the cluster (its name, its key, its database).
resource "terraform_data" "cluster_generation" {
  count = local.create_cluster ? 1 : 0

  triggers_replace = [var.name, var.cluster_kms_key_arn, local.db_name]
}

resource "aws_rds_cluster" "this" {
  #checkov:skip=CKV2_AWS_8:Aurora's automated backups (cluster_backup_retention_days, 7 by default) and a final snapshot cover a starter deployment; add an AWS Backup plan where the organisation requires one.
  #checkov:skip=CKV2_AWS_27:Statement logging (log_statement) would write every query, with tenants' data, to CloudWatch; the API logs one line per request itself. Add a parameter group with pgaudit where an audit trail is required.
  #checkov:skip=CKV_AWS_327:Encrypted with the AWS-managed aws/rds key unless cluster_kms_key_arn names a customer-managed one; requiring a CMK would add a key and its policy to every starter deployment.
  count = local.create_cluster ? 1 : 0

  cluster_identifier = var.name
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned"
  engine_version     = data.aws_rds_engine_version.cluster[0].version_actual
  database_name      = local.db_name
  port               = 5432

  # The master user logs in with a password RDS generates, keeps in Secrets
  # Manager and rotates; only scripts/bootstrap-db.sh uses it, through the
  # Data API. The application's roles log in with IAM tokens. The Data API
  # lets anyone with rds-data:ExecuteStatement and the master secret run SQL
  # as the master user over HTTPS: on for the first apply's set-up, off with
  # cluster_data_api = false once it has run
  # (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html).
  master_username                     = "postgres"
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = var.cluster_kms_key_arn
  iam_database_authentication_enabled = true
  enable_http_endpoint                = var.cluster_data_api

  storage_encrypted         = true
  kms_key_id                = var.cluster_kms_key_arn
  deletion_protection       = var.cluster_deletion_protection
  backup_retention_period   = var.cluster_backup_retention_days
  copy_tags_to_snapshot     = true
  skip_final_snapshot       = var.cluster_skip_final_snapshot
  final_snapshot_identifier = "${var.name}-final-${substr(terraform_data.cluster_generation[0].id, 0, 8)}"

  db_subnet_group_name            = aws_db_subnet_group.this[0].name
  vpc_security_group_ids          = [aws_security_group.cluster[0].id]
  enabled_cloudwatch_logs_exports = ["postgresql"]

  serverlessv2_scaling_configuration {
    min_capacity             = var.cluster_min_acu
    max_capacity             = var.cluster_max_acu
    seconds_until_auto_pause = var.cluster_min_acu == 0 ? var.cluster_seconds_until_auto_pause : null
  }

  tags = local.tags

  depends_on = [aws_cloudwatch_log_group.cluster]

  lifecycle {
    # RDS applies minor upgrades itself (the writer's auto_minor_version_upgrade);
    # Terraform must not try to take the cluster back to the version it was
    # created with. A major upgrade: see cluster_engine_version.
    ignore_changes = [engine_version]

    precondition {
      condition     = var.cluster_min_acu <= var.cluster_max_acu
      error_message = "cluster_min_acu (${var.cluster_min_acu}) must not exceed cluster_max_acu (${var.cluster_max_acu})."
    }
  }
}

# Serverless v2 capacity lives in instances of class db.serverless: one
# writer. Add readers (more instances) for failover across availability zones.
resource "aws_rds_cluster_instance" "writer" {
  #checkov:skip=CKV_AWS_118:Enhanced monitoring needs a monitoring role and bills per instance; CloudWatch's cluster metrics and the exported PostgreSQL log cover a starter deployment.
  #checkov:skip=CKV_AWS_353:Performance Insights keeps the instance from scaling below 2 ACU (no auto-pause); enable it where query-level performance data is worth that.
  count = local.create_cluster ? 1 : 0

  identifier                 = "${var.name}-writer"
  cluster_identifier         = aws_rds_cluster.this[0].id
  instance_class             = "db.serverless"
  engine                     = aws_rds_cluster.this[0].engine
  engine_version             = aws_rds_cluster.this[0].engine_version
  db_subnet_group_name       = aws_db_subnet_group.this[0].name
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  tags                       = local.tags
}

# `terraform destroy` removes the writer before the cluster, and deletion
# protection refuses only the cluster: the instance would go and the cluster
# stay, empty (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_DeleteCluster.html#USER_DeletionProtection).
# This guard depends on the writer, so it is destroyed first, and refuses
# while the cluster is protected: the destroy stops before the database is
# touched. Turn protection off with an apply first (docs/deploy.md, Teardown).
resource "terraform_data" "cluster_destroy_guard" {
  count = local.create_cluster ? 1 : 0

  input = {
    cluster             = aws_rds_cluster.this[0].cluster_identifier
    deletion_protection = var.cluster_deletion_protection
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["bash", "-c"]
    command     = <<-EOT
      if [ "$DELETION_PROTECTION" = true ]; then
        echo "Aurora cluster $CLUSTER has deletion protection: destroying it would remove its writer and then be refused, leaving a cluster without instances. Set cluster_deletion_protection = false, terraform apply, then destroy (docs/deploy.md, Teardown)." >&2
        exit 1
      fi
    EOT
    environment = {
      CLUSTER             = self.input.cluster
      DELETION_PROTECTION = tostring(self.input.deletion_protection)
    }
  }

  depends_on = [aws_rds_cluster_instance.writer]
}
