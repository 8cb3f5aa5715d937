"""Cluster configs, job submission and the local stand-ins (synthetic web, S3 on loopback)."""
