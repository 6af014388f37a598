"""The only code that touches dbt: the in-process runner (parse, build, artifacts) and its options."""
