#!/usr/bin/env python3
"""Runs the Athena DDL that `trailhound lake ddl` printed in Spark's Hive metastore, against a
lake on disk, and prints what Spark reads through those tables as one JSON object.

Athena's DDL is Hive's: Spark parses it with the same grammar, keeps the declared column
types in a Hive metastore, and reads the Parquet files by those names and types. A statement
Hive would refuse fails here; a declared type the files do not hold fails the query.
Partition projection is Athena's own, so the partitions are registered with `MSCK REPAIR
TABLE` instead.

    trailhound lake ddl LAKE --location s3://BUCKET/PREFIX > lake.sql
    scripts/spark-ddl-check.py lake.sql LAKE s3://BUCKET/PREFIX

Needs `pip install pyspark` and a Java runtime (17 or later).
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ddl", help="the statements `trailhound lake ddl` printed")
    parser.add_argument("lake", help="the lake directory they describe")
    parser.add_argument("location", help="the --location given to `lake ddl`")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    ddl_path = os.path.abspath(args.ddl)
    lake = "file://" + os.path.abspath(args.lake).rstrip("/")
    # Spark and its Derby metastore leave files in the working directory: work elsewhere.
    work = tempfile.mkdtemp(prefix="spark-ddl-")
    os.chdir(work)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("trailhound-ddl-check")
        .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={os.path.join(work, 'metastore')};create=true",
        )
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .enableHiveSupport()
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    with open(ddl_path) as f:
        ddl = f.read()
    located = ddl.replace(args.location.rstrip("/"), lake)
    if located == ddl:
        sys.exit(f"{args.location} does not appear in {args.ddl}")
    statements = [s.strip() for s in located.split(";") if s.strip()]
    tables = []
    for statement in statements:
        spark.sql(statement)
        named = re.match(r"CREATE EXTERNAL TABLE IF NOT EXISTS (\S+)", statement)
        if named:
            tables.append(named.group(1))
    for table in tables:
        spark.sql(f"MSCK REPAIR TABLE {table}")

    def one(sql):
        return [list(row) for row in spark.sql(sql).collect()]

    out = {
        "tables": tables,
        "cloudtrail_count": one(
            "SELECT count(*), count(DISTINCT eventid) FROM trailhound.cloudtrail"
        )[0],
        "by_account": one(
            "SELECT account, count(*) FROM trailhound.cloudtrail GROUP BY account ORDER BY account"
        ),
        "access_keys": one(
            "SELECT count(DISTINCT useridentity.accesskeyid) FROM trailhound.cloudtrail"
        )[0][0],
        "issuers": one(
            "SELECT count(DISTINCT useridentity.sessioncontext.sessionissuer.arn) "
            "FROM trailhound.cloudtrail"
        )[0][0],
        "resources": one(
            "SELECT count(*) FROM trailhound.cloudtrail LATERAL VIEW explode(resources) r AS res "
            "WHERE res.arn IS NOT NULL"
        )[0][0],
        "first_event": one(
            "SELECT CAST(min(eventtime) AS STRING) FROM trailhound.cloudtrail"
        )[0][0],
        "findings": one("SELECT count(*) FROM trailhound.findings")[0][0],
        "finding_records": one(
            "SELECT count(*) FROM (SELECT explode(eventids) AS id FROM trailhound.findings) f "
            "JOIN trailhound.cloudtrail c ON c.eventid = f.id"
        )[0][0],
        "invocations": one("SELECT count(*) FROM trailhound.bedrock_invocations")[0][0],
    }
    print(json.dumps(out))
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
