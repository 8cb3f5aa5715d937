"""Local S3 stand-in: moto's server mode on 127.0.0.1 (see `server.py`); `clipforge s3 serve` runs it."""
