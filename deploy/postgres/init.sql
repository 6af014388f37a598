-- One server, two databases: Prefect's own state and the warehouse dbt and dlt write to.
CREATE DATABASE prefect;
CREATE DATABASE warehouse;
