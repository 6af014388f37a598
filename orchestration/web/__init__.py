"""What a browser sees: dbt docs with Headwater's checks and lineage, the catalog app and its page."""
