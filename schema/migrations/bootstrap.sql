CREATE DATABASE IF NOT EXISTS `${database}`${on_cluster};

CREATE TABLE IF NOT EXISTS `${database}`.`schema_migrations`${on_cluster} (
    version UInt32,
    name String,
    applied_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ${engine:ReplacingMergeTree(applied_at)}
ORDER BY version;
