"""The ARM-compatible REST API (FastAPI)."""
