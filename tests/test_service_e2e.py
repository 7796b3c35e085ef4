"""End to end through real servers: sign up, log in, render, download, decode."""

from __future__ import annotations

import uuid
from fractions import Fraction

import av
import httpx
import pytest

from tests.stack import Stack, sign_up_and_log_in, wait_for_state

SMALL = {"width": 64, "height": 48, "frames": 24, "fps": 24, "max_iter": 200}


def _render_and_check(stack: Stack, username: str, tmp_path) -> None:
    with stack.client() as client:
        headers = sign_up_and_log_in(client, username)
        me = client.get("/v1/users/me", headers=headers)
        assert me.status_code == 200 and me.json()["username"] == username

        response = client.post("/v1/animations", json=SMALL, headers=headers)
        assert response.status_code == 202, response.text
        task = response.json()
        assert task["state"] in ("queued", "running")
        assert task["progress"]["frames_total"] == 24
        assert response.headers["Location"] == f"/v1/animations/{task['id']}"

        seen: list[tuple[str, int]] = []  # (state, frames done) of every poll
        task = wait_for_state(
            client,
            headers,
            task["id"],
            {"succeeded", "failed", "canceled"},
            on_update=lambda polled: seen.append(
                (polled["state"], polled["progress"]["frames_done"])
            ),
        )
        assert task["state"] == "succeeded", task
        # Only forward moves: the states in their order, progress never going back.
        order = ["queued", "running", "succeeded"]
        states = [state for state, _ in seen]
        assert set(states) <= set(order) and states == sorted(states, key=order.index)
        frames = [done for _, done in seen]
        assert frames == sorted(frames) and all(0 <= done <= 24 for done in frames)
        assert task["progress"] == {
            "frames_done": 24,
            "frames_total": 24,
            "percent": 100.0,
            "eta_seconds": None,
        }
        assert task["started_at"] and task["finished_at"] and task["video_size"] > 0
        assert task["spec"]["width"] == 64

        video = httpx.get(task["video_url"], timeout=30)
        assert video.status_code == 200
        assert len(video.content) == task["video_size"]
        path = tmp_path / f"{username}.mp4"
        path.write_bytes(video.content)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert sum(1 for _ in container.decode(stream)) == 24
            assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
            assert container.duration is not None
            assert Fraction(container.duration, 1_000_000) == Fraction(1)

        redirect = client.get(f"/v1/animations/{task['id']}/video", headers=headers)
        assert redirect.status_code == 302
        assert httpx.get(redirect.headers["Location"], timeout=30).content == video.content
        # The poster, through the store's own presigned link (S3 or the signed local one).
        poster = httpx.get(task["poster_url"], timeout=30)
        assert poster.status_code == 200 and poster.content[8:12] == b"WEBP"
        assert poster.headers["content-type"] == "image/webp"

        listing = client.get("/v1/animations", headers=headers).json()
        assert [item["id"] for item in listing["items"]] == [task["id"]]
        assert (
            client.get("/v1/animations", params={"state": "running"}, headers=headers).json()[
                "items"
            ]
            == []
        )

    store = stack.store()
    assert store.list_keys(f"segments/{task['id']}/") == []
    # The video and its poster, nothing else.
    assert store.list_keys(f"videos/{task['id']}") == [
        f"videos/{task['id']}.mp4",
        f"videos/{task['id']}.webp",
    ]


def test_end_to_end_with_local_store(local_stack: Stack, tmp_path) -> None:
    _render_and_check(local_stack, "alice-local", tmp_path)


def test_end_to_end_with_s3_store(s3_stack: Stack, tmp_path) -> None:
    _render_and_check(s3_stack, "alice-s3", tmp_path)


def test_local_file_urls_are_signed(local_stack: Stack) -> None:
    with local_stack.client() as client:
        bad = client.get("/v1/files/videos/x.mp4", params={"expires": 9999999999, "signature": "0"})
        assert bad.status_code == 403
        expired = local_stack.store().presigned_url("videos/x.mp4", -10)
        assert httpx.get(expired).status_code == 403


def test_pagination_newest_first(local_stack: Stack) -> None:
    from fractal.db import Task, User, make_engine, make_session_factory, session_scope

    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "pager")
        me = client.get("/v1/users/me", headers=headers).json()
        # Rows inserted directly: pagination needs no renders.
        engine = make_engine(local_stack.settings.database_url or "")
        with session_scope(make_session_factory(engine)) as session:
            owner = session.get(User, uuid.UUID(me["id"]))
            assert owner is not None
            for _ in range(5):
                session.add(
                    Task(
                        owner_id=owner.id,
                        spec=SMALL,
                        frames_total=24,
                        state="failed",
                        frames_done=0,
                    )
                )
                session.flush()
        engine.dispose()
        ids: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/animations", params=params, headers=headers).json()
            ids += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(ids) == len(set(ids)) == 5
        listing = client.get("/v1/animations", params={"limit": 100}, headers=headers).json()
        assert [item["id"] for item in listing["items"]] == ids
        created = [item["created_at"] for item in listing["items"]]
        assert created == sorted(created, reverse=True)
        assert (
            client.get("/v1/animations", params={"cursor": "!!"}, headers=headers).status_code
            == 400
        )


@pytest.mark.parametrize("body", [{"width": 17}, {"frames": 0}, {"bogus": 1}, []])
def test_invalid_specs_are_422(local_stack: Stack, body) -> None:
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, f"invalid-{abs(hash(str(body)))}")
        response = client.post("/v1/animations", json=body, headers=headers)
        assert response.status_code == 422
