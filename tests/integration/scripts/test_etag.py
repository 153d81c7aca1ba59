"""ETag on scripts and If-Match on PATCH: concurrent editors never overwrite each other."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.api import Api, assert_error


async def test_get_returns_a_strong_etag_that_changes_with_the_script(api: Api) -> None:
    script = await api.create_script("tagged")
    first = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]
    again = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]

    patched = await api.patch(f"/scripts/{script['id']}", json={"name": "Changed"})

    assert first == again
    assert first.startswith('"') and first.endswith('"')  # noqa: PT018
    assert patched.headers["ETag"] != first
    assert (await api.get(f"/scripts/{script['id']}")).headers["ETag"] == patched.headers["ETag"]


async def test_new_versions_and_publishing_change_the_etag(api: Api) -> None:
    script = await api.create_script("moving")
    before = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]
    await api.create_version(script["id"])
    after_version = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]
    published = await api.post(f"/scripts/{script['id']}/versions/1/publish")

    assert len({before, after_version, published.headers["ETag"]}) == 3


async def test_patch_with_matching_if_match_succeeds(api: Api) -> None:
    script = await api.create_script("matching")
    etag = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]

    response = await api.patch(f"/scripts/{script['id']}", json={"name": "Mine"}, headers={"If-Match": etag})

    assert response.status_code == 200
    assert response.json()["name"] == "Mine"


async def test_patch_with_stale_if_match_is_precondition_failed_and_changes_nothing(api: Api) -> None:
    script = await api.create_script("stale")
    etag = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]
    await api.patch(f"/scripts/{script['id']}", json={"name": "Someone else"})

    response = await api.patch(f"/scripts/{script['id']}", json={"name": "Mine"}, headers={"If-Match": etag})

    assert_error(response, 412, "PRECONDITION_FAILED")
    assert (await api.get(f"/scripts/{script['id']}")).json()["name"] == "Someone else"


async def test_if_match_star_and_lists(api: Api) -> None:
    script = await api.create_script("star")
    etag = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]

    star = await api.patch(f"/scripts/{script['id']}", json={"name": "A"}, headers={"If-Match": "*"})
    listed = await api.patch(
        f"/scripts/{script['id']}",
        json={"name": "B"},
        headers={"If-Match": f'"nope", {star.headers["ETag"]}'},
    )

    assert star.status_code == 200
    assert listed.status_code == 200
    assert etag != star.headers["ETag"]


@pytest.mark.parametrize("value", ['W/"abc"', "abc", '"unterminated', '"a" "b"', ""])
async def test_weak_or_malformed_if_match_is_validation_error(api: Api, value: str) -> None:
    script = await api.create_script("malformed")

    response = await api.patch(f"/scripts/{script['id']}", json={"name": "X"}, headers={"If-Match": value})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "If-Match"
    assert (await api.get(f"/scripts/{script['id']}")).json()["name"] == "Malformed"


async def test_two_editors_with_the_same_etag_one_wins_the_other_gets_412(api: Api) -> None:
    script = await api.create_script("contested")
    etag_a = (await api.get(f"/scripts/{script['id']}")).headers["ETag"]
    etag_b = (await api.as_(token="user-token").get(f"/scripts/{script['id']}")).headers["ETag"]
    assert etag_a == etag_b

    alice, bob = await asyncio.gather(
        api.patch(f"/scripts/{script['id']}", json={"name": "Alice's"}, headers={"If-Match": etag_a}),
        api.as_(token="user-token").patch(
            f"/scripts/{script['id']}", json={"name": "Bob's"}, headers={"If-Match": etag_b}
        ),
    )

    assert sorted([alice.status_code, bob.status_code]) == [200, 412]
    winner = alice if alice.status_code == 200 else bob
    loser = bob if winner is alice else alice
    assert_error(loser, 412, "PRECONDITION_FAILED")
    final = (await api.get(f"/scripts/{script['id']}")).json()
    assert final["name"] == winner.json()["name"]
    updates = (await api.get(f"/scripts/{script['id']}/audit", params={"action": "UPDATE"})).json()["items"]
    assert len(updates) == 1
