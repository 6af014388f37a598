"""The run itself, without Prefect or a warehouse of its own: the plan and its stages, the dbt segment with its
retry rounds, checks, Python assets, checkpoints, and the report it returns."""
