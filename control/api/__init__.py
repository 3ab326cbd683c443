"""The REST management API (SparkRTC /v2 and /v1 paths)."""
