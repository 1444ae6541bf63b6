-- Plans (issue 24): a tenant's plan, a name from the deployment's plan catalogue (`PLANS`);
-- NULL is the catalogue's default plan. Aurora DSQL adds a column without a default or a
-- constraint only (https://docs.aws.amazon.com/aurora-dsql/latest/userguide/alter-table-syntax-support.html);
-- the API and `scripts/tenant.sh plan` write only names of the catalogue.
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS plan text;
