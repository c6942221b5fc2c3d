"""Paper export: the replication table T07 and claim-to-evidence notes from finished runs."""
