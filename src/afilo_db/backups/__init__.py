"""Logical backups with a manifest, their verification by restore, restores, point-in-time recovery."""
