"""Replication: per-vgroup workers, batching and the LMDB offset store."""
