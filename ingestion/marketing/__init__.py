"""The marketing source: daily ad-spend exports and their dlt source."""
