"""Reading a project without running it: column lineage, change plans against the deployed state, table diff."""
