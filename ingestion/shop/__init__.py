"""The shop source: simulator of the operational database and its dlt source."""
