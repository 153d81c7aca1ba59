from tests.support.api import Api


async def test_create_version_publish_then_get_shows_active_version(api: Api) -> None:
    script = await api.create_script("welcome")
    version = await api.create_version(script["id"], {"nodes": [], "edges": []})
    await api.publish(script["id"], version["version"])

    response = await api.get(f"/scripts/{script['id']}")

    assert response.status_code == 200
    assert response.json()["activeVersionId"] == version["id"]
