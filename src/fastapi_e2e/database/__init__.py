"""The database layer: find PostgreSQL, run a cluster, create databases, share a transaction."""
