"""The database layer: find PostgreSQL, run a cluster, create test databases, share a transaction."""
