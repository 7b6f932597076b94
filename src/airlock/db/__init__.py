"""The control plane's database: one schema (``schema.py``) and one migration path (Alembic, ``migrations/``)."""
