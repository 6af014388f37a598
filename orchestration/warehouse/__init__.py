"""Where runs write: targets rendered from dbt profiles, the per-target lock, the run log."""
