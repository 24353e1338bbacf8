"""Every route answers a wrong method in the API's JSON shape with ``Allow``, as README promises.

Found by black-box testing: ``POST /stores/{id}/timeline`` and ``DELETE /reports/{id}`` got
Chalice's own ``{"Code": "MethodNotAllowedError", ...}``. (The ``/shared/...`` routes are left
alone: they are the only ones without a key at the gateway, and should stay GET only.)"""
from __future__ import annotations

import uuid

import pytest


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [
    "/stores/123/timeline?report_id={id}", "/reports/{id}",
])
def test_a_wrong_method_answers_405_in_the_api_shape(client, aws, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.http.request(method, path.format(id=uuid.uuid4()))
    assert response.status_code == 405
    error = f"method {method} is not allowed here; use GET"
    assert response.json_body == {"error": error, "status_code": 405}
    assert response.headers["Allow"] == "GET"
