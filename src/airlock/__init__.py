"""airlock: move OCI artifacts across an air gap through blob storage."""

__version__ = "0.1.0"
