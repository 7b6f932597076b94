"""What a running airlock tells its operator: Prometheus metrics (``metrics.py``), log lines as text
or JSON with the run, pipeline, correlation id and principal they belong to (``logs.py``), and the
one redaction every log line, error line and metric label goes through (``redaction.py``).

Below every other layer (it imports no other airlock package), so the engine, the control plane,
the API and the CLI may all report through it.
"""
