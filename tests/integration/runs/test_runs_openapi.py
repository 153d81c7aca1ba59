"""The runs surface is documented in the OpenAPI schema."""

from __future__ import annotations

from tests.support.api import Api


async def test_openapi_documents_every_runs_route(api: Api) -> None:
    response = await api.http.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    assert set(paths["/runs"]) == {"get", "post"}
    for suffix in ("vars", "steps", "finish"):
        assert "post" in paths[f"/runs/{{run_id}}/{suffix}"]
    assert "get" in paths["/runs/{run_id}"]
    step_data = response.json()["components"]["schemas"]["ClosedQuestionData"]
    assert "dataType" in step_data["properties"]
