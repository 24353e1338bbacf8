"""The local API server decodes path parameters as API Gateway does.

Found by black-box testing: under ``./storemon up`` the timeline of store ``a b`` (requested
as ``/stores/a%20b/timeline``, the report page's own link) was a 404 naming ``'a%20b'``."""
from __future__ import annotations

from chalice.local import RouteMatcher

from storemon_app.api_server import decode_path_parameters


def test_captured_path_parameters_are_url_decoded() -> None:
    matcher = RouteMatcher(["/stores/{store_id}/timeline", "/reports/{report_id}"])
    match = decode_path_parameters(RouteMatcher.match_route)
    for raw, store_id in [("a%20b", "a b"), ("x%2Fy", "x/y"), ("m%C3%BCnchen", "münchen"),
                          ("%3D1%2B1", "=1+1"), ("=1+1", "=1+1"),
                          ("q%3Fr%23s%25t", "q?r#s%t"), ("123", "123")]:
        result = match(matcher, f"/stores/{raw}/timeline?report_id=r%20x")
        assert result.route == "/stores/{store_id}/timeline"
        assert result.captured == {"store_id": store_id}
        assert result.query_params == {"report_id": ["r x"]}
