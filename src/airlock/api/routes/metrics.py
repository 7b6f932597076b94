"""``GET /metrics``: this process's Prometheus metrics (``airlock.observability.metrics``), text format.

Open like ``/healthz``, without a token: Prometheus scrapers rarely carry one, and what it shows is
counts by bounded labels (pipeline kind, run state, route template, method, status) and process
figures: no resource name or id, no principal, no credential. ARCHITECTURE.md's threat model has
its row. Not in the OpenAPI document: it is not part of the ARM API.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from airlock.observability import metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def scrape() -> Response:
    """The metrics, in the content type prometheus-client declares for its text format."""
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)
