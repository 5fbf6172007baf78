"""High availability on PostgreSQL: the lease and shard rules (pure) and the elector/membership that run them."""
