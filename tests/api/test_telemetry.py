"""The route label of a request: the template of the route that answers it, however it is answered."""

from __future__ import annotations

from fastapi.routing import APIRoute

from airlock.api.app import ROUTERS
from airlock.api.telemetry import route_template

ROUTES = [route for router in ROUTERS for route in router.routes]
REGISTRY_ROUTE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{registry}"


def scope(method: str, path: str) -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": ""}


def test_a_request_refused_before_routing_is_labelled_with_its_routes_template() -> None:
    path = "/subscriptions/0/resourceGroups/secret-rg/providers/Microsoft.ContainerRegistry/registries/secretreg"
    assert route_template(scope("PUT", path), ROUTES) == REGISTRY_ROUTE
    assert route_template(scope("PATCH", path), ROUTES) == REGISTRY_ROUTE  # a wrong method still names its path's route


def test_the_routers_match_wins_and_unknown_paths_are_unmatched() -> None:
    first = ROUTES[0]
    assert isinstance(first, APIRoute)  # a router's route, which has a path template
    matched = {**scope("GET", "/anything"), "route": first}
    assert route_template(matched, ROUTES) == first.path
    assert route_template(scope("GET", "/nosuch/id-1234"), ROUTES) == "unmatched"
