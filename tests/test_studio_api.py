"""The API behind the studio, against the running stack: previews, map tiles, the spec's
schema and estimate, posters, live progress (Server-Sent Events), offline docs."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from fractal.cli.client import ServerEvent, iter_server_events
from fractal.engine.stills import TILE_SIZE
from tests.stack import Stack, make_settings, serve_api, sign_up_and_log_in, wait_for_state

SMALL = {"width": 64, "height": 48, "frames": 12, "max_iter": 100}


def image_of(response: httpx.Response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def preview(
    client: httpx.Client, spec: dict, headers: dict | None = None, **params: Any
) -> httpx.Response:
    return client.get("/v1/preview", params={"spec": json.dumps(spec), **params}, headers=headers)


# -- previews -------------------------------------------------------------------------------


def test_a_preview_is_an_image_of_the_asked_size_with_cache_headers(local_stack: Stack) -> None:
    spec = {"c": [-0.4, 0.6], "width": 1920, "height": 1080, "max_iter": 300}
    with local_stack.client() as client:
        response = preview(client, spec, frame=3, width=480)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/webp"
        image = image_of(response)
        assert (image.format, image.size) == ("WEBP", (480, 270))  # the spec's aspect
        etag = response.headers["etag"]
        assert etag.startswith('"') and len(etag) > 20
        assert "max-age" in response.headers["cache-control"]
        assert "render;dur=" in response.headers["server-timing"]

        # The client's copy is current: 304, nothing drawn.
        again = preview(client, spec, frame=3, width=480, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        # This process has it: served from its cache.
        cached = preview(client, spec, frame=3, width=480)
        assert cached.headers["server-timing"] == "cache;desc=hit"
        assert cached.content == response.content

        # Another frame is another image; PNG on request; POST for long specs, same image.
        other = preview(client, spec, frame=40, width=480)
        assert other.headers["etag"] != etag and other.content != response.content
        png = preview(client, spec, frame=3, width=480, format="png")
        assert image_of(png).format == "PNG" and png.headers["content-type"] == "image/png"
        posted = client.post("/v1/preview", json={"spec": spec, "frame": 3, "width": 480})
        assert posted.status_code == 200 and posted.headers["etag"] == etag


def test_a_preview_without_a_size_is_the_spec_scaled_to_the_cap(local_stack: Stack) -> None:
    with local_stack.client() as client:
        small = preview(client, {"width": 320, "height": 240, "max_iter": 50})
        assert image_of(small).size == (320, 240)
        big = preview(client, {"width": 3840, "height": 2160, "max_iter": 50})
        width, height = image_of(big).size
        assert width * height <= local_stack.settings.preview_max_pixels
        assert (width, height) == (1280, 720)


def test_the_preview_shows_the_frame_of_the_path(local_stack: Stack) -> None:
    """Frame k of a line path is c moved along it: the same image as frame 0 of a spec
    starting where the path is at frame k."""
    path = {"kind": "line", "points": [[0.3, 0.5]]}
    moving = {"c": [-0.7, 0.2], "path": path, "frames": 11, "max_iter": 200}
    with local_stack.client() as client:
        middle = preview(client, moving, frame=5, width=96, format="png")
        start = preview(client, {**moving, "c": [-0.2, 0.35]}, frame=0, width=96, format="png")
        first = preview(client, moving, frame=0, width=96, format="png")
    assert middle.status_code == start.status_code == 200
    # c at frame 5 of 11 is halfway: (-0.7 + 0.3) / 2, (0.2 + 0.5) / 2.
    assert image_of(middle).tobytes() != image_of(first).tobytes()
    pixels = image_of(middle).tobytes(), image_of(start).tobytes()
    assert pixels[0] == pixels[1]


@pytest.mark.parametrize(
    ("params", "loc", "words"),
    [
        ({"spec": '{"width": 801}'}, ["query", "spec", "width"], "even number"),
        ({"spec": '{"colormap": "neon"}'}, ["query", "spec", "colormap"], "classic"),
        ({"spec": "{not json"}, ["query", "spec"], "not valid JSON"),
        ({"spec": "[1, 2]"}, ["query", "spec"], "JSON object"),
        ({"spec": '{"frames": 10}', "frame": 10}, ["query", "frame"], "from 0 to 9"),
        ({"spec": "{}", "width": 2000, "height": 1000}, ["query", "width"], "too large"),
        ({"spec": "{}", "width": 479}, ["query", "width"], "even number"),
        (
            # c inside the set: pixels may run to max_iter, 640 x 480 x 16 x 10000 of them.
            {"spec": '{"c": [-0.12, 0.75], "max_iter": 10000, "supersample": 4}', "width": 640},
            ["query", "spec", "max_iter"],
            "too expensive",
        ),
    ],
)
def test_a_refused_preview_names_the_field(
    local_stack: Stack, params: dict, loc: list, words: str
) -> None:
    with local_stack.client() as client:
        response = client.get("/v1/preview", params=params)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == loc
    assert words in problem["msg"]


def test_a_posted_preview_names_the_field_in_the_body(local_stack: Stack) -> None:
    with local_stack.client() as client:
        response = client.post("/v1/preview", json={"spec": {"fps": 0}, "frame": 0})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "spec", "fps"]


@pytest.fixture(scope="module")
def stingy_api(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
) -> Iterator[str]:
    """An API with room for 3 previews and 2 tiles a minute per requester."""
    settings = make_settings(
        tmp_path_factory.mktemp("stingy"),
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        previews_per_minute=3,
        preview_burst=3,
        map_tiles_per_minute=2,
        map_tile_burst=2,
    )
    with serve_api(settings) as base_url:
        yield base_url


def test_previews_and_tiles_are_rate_limited_per_requester(stingy_api: str) -> None:
    with httpx.Client(base_url=stingy_api, timeout=30) as client:
        answers = [preview(client, SMALL, frame=frame).status_code for frame in range(4)]
        assert answers == [200, 200, 200, 429]
        refused = preview(client, SMALL, frame=5)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # What was drawn already is free: cached images spend nothing.
        assert preview(client, SMALL, frame=0).status_code == 200
        # A signed-in user has a bucket of their own.
        headers = sign_up_and_log_in(client, f"limited-{uuid.uuid4().hex[:8]}")
        assert preview(client, SMALL, frame=6, headers=headers).status_code == 200
        # A bad token is refused, not taken as anonymous.
        bad = preview(client, SMALL, frame=7, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401

        tiles = [client.get(f"/v1/map/tiles/3/{x}/3.webp").status_code for x in range(3)]
        assert tiles == [200, 200, 429]


# -- the map ----------------------------------------------------------------------------------


def test_map_tiles_are_the_mandelbrot_set(local_stack: Stack) -> None:
    with local_stack.client() as client:
        info = client.get("/v1/map").json()
        assert info["tile_size"] == TILE_SIZE and info["extent"] == 4.0
        url = info["tile_url"].format(z=2, x=1, y=1)
        tile = client.get(url)
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/webp"
        assert "max-age" in tile.headers["cache-control"] and tile.headers["etag"]
        image = image_of(tile).convert("RGB")
        assert image.size == (TILE_SIZE, TILE_SIZE)
        # Tile (2, 1, 1) spans re -2..0, im 0..2: its bottom-right corner (c = 0) is
        # inside the set (black), its top-left corner (c = -2 + 2i) far outside.
        pixels = np.asarray(image)
        assert pixels[TILE_SIZE - 2, TILE_SIZE - 2].max() < 30
        assert pixels[1, 1].max() > 60
        png = client.get("/v1/map/tiles/0/0/0.png")
        assert image_of(png).format == "PNG"
        assert client.get(url).headers["server-timing"] == "cache;desc=hit"
        for bad in ("/v1/map/tiles/2/4/0.webp", "/v1/map/tiles/41/0/0.webp"):
            response = client.get(bad)
            assert response.status_code == 404 and "no tile" in response.json()["detail"]
        assert client.get("/v1/map/tiles/1/0/0.gif").status_code == 422


def test_a_deep_zoom_previews_and_is_estimated_as_submit_would_take_it(
    local_stack: Stack,
) -> None:
    """The issue's zoom (decimal-string center, zoom camera, max_iter 20000) through the
    studio's API: its last frame (1e-30, perturbation) previews with structure, and the
    estimate admits it; a view the probe cannot see escape at a huge max_iter is refused
    by the preview's work cap, naming max_iter."""
    from fractal.locations import GAIA

    zoom = {
        "fractal": "mandelbrot",
        "center": list(GAIA),
        "scale": 1.5,
        "camera": {"kind": "zoom", "zoom_to": 1e-30},
        "max_iter": 20000,
        "width": 400,
        "height": 300,
        "fps": 30,
        "duration": 10,
    }
    with local_stack.client() as client:
        deepest = preview(client, zoom, frame=299, width=160, format="png")
        assert deepest.status_code == 200, deepest.text
        pixels = np.asarray(image_of(deepest).convert("L"), dtype=float)
        assert pixels.shape == (120, 160) and pixels.std() > 5  # structure, not one colour

        estimate = client.post("/v1/animations/estimate", json=zoom).json()
        assert estimate["accepted"] is True, estimate
        assert estimate["frames"] == 300 and len(estimate["chunks"]) > 1

        slow = {"fractal": "burning_ship", "max_iter": 100000, "width": 640, "height": 480}
        refused = preview(client, slow, width=640)
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["query", "spec", "max_iter"] and "too expensive" in problem["msg"]


# -- the spec: schema and estimate ------------------------------------------------------------


def test_the_spec_schema_lists_every_field(local_stack: Stack) -> None:
    from fractal.spec import AnimationSpec

    with local_stack.client() as client:
        schema = client.get("/v1/spec/schema").json()
    assert set(schema["properties"]) == set(AnimationSpec.model_fields)
    assert schema["properties"]["width"]["maximum"] == 3840
    assert "discriminator" in schema["properties"]["path"]


def test_the_estimate_is_what_the_server_would_do(local_stack: Stack) -> None:
    from api.animation_service import cost_estimate
    from fractal.spec import AnimationSpec

    spec = {"width": 320, "height": 240, "fps": 24, "duration": 2, "max_iter": 300}
    with local_stack.client() as client:
        answer = client.post("/v1/animations/estimate", json=spec)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["frames"], body["pixels"]) == (48, 320 * 240)
        expected = cost_estimate(local_stack.settings, AnimationSpec.model_validate(spec))
        assert body["cpu_seconds"] == round(expected.cpu_seconds, 1) > 0
        assert body["output_bytes"] == expected.output_bytes > 0
        assert body["worker_memory_bytes"] < body["max_worker_memory_bytes"]
        assert body["accepted"] is True and body["refusal"] is None
        assert body["chunks"][0]["first_frame"] == 0 and body["chunks"][-1]["stop_frame"] == 48
        assert len(body["chunks"]) == 2  # one second of video each
        assert [point["frame"] for point in body["c_path"]] == list(range(48))
        assert body["c_path"][0]["re"] == -0.8 and body["c_path"][0]["im"] == -0.18

        # What submit would refuse, with submit's own words.
        huge = {"width": 3840, "height": 2160, "frames": 3600, "max_iter": 10000}
        refused = client.post("/v1/animations/estimate", json=huge).json()
        assert refused["accepted"] is False
        headers = sign_up_and_log_in(client, f"estimator-{uuid.uuid4().hex[:8]}")
        submitted = client.post("/v1/animations", json=huge, headers=headers)
        assert submitted.status_code == 422
        assert submitted.json()["detail"] == refused["refusal"]

        invalid = client.post("/v1/animations/estimate", json={"fps": 100})
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["body", "fps"]


# -- posters and live progress ----------------------------------------------------------------


def events_of(client: httpx.Client, task_id: str, headers: dict) -> list[ServerEvent]:
    with client.stream("GET", f"/v1/animations/{task_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(iter_server_events(response.iter_lines()))


def test_progress_streams_in_order_to_the_end_and_the_poster_follows(
    local_stack: Stack, tmp_path: Path
) -> None:
    spec = {**SMALL, "width": 160, "height": 90, "frames": 48, "max_iter": 300}
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, f"watcher-{uuid.uuid4().hex[:8]}")
        task = client.post("/v1/animations", json=spec, headers=headers).json()
        started = time.monotonic()
        events = events_of(client, task["id"], headers)
        assert time.monotonic() - started < 120

        assert [event.event for event in events] == ["progress"] * len(events)
        assert [event.id for event in events] == [str(n) for n in range(1, len(events) + 1)]
        bodies = [json.loads(event.data) for event in events]
        order = ["queued", "running", "succeeded"]
        ranks = [order.index(body["state"]) for body in bodies]
        assert ranks == sorted(ranks)
        final = bodies[-1]
        assert final["state"] == "succeeded" and final["id"] == task["id"]
        assert final["progress"]["frames_done"] == final["progress"]["frames_total"] == 48
        assert final["video_url"] and final["poster_url"]

        # The poster: the first frame, beside the video, served to the owner only.
        redirect = client.get(f"/v1/animations/{task['id']}/poster", headers=headers)
        assert redirect.status_code == 302
        poster = client.get(redirect.headers["location"])
        assert poster.headers["content-type"] == "image/webp"
        assert image_of(poster).size == (160, 90)
        stranger = sign_up_and_log_in(client, f"stranger-{uuid.uuid4().hex[:8]}")
        assert client.get(f"/v1/animations/{task['id']}/poster", headers=stranger).status_code == (
            404
        )

        # A finished task's stream is its final state, at once.
        [only] = events_of(client, task["id"], headers)
        assert json.loads(only.data)["state"] == "succeeded"

        # Deleting the animation deletes the poster with the video.
        store = local_stack.store()
        keys = [f"videos/{task['id']}.mp4", f"videos/{task['id']}.webp"]
        assert all(store.exists(key) for key in keys)
        assert client.delete(f"/v1/animations/{task['id']}", headers=headers).status_code == 204
        assert not any(store.exists(key) for key in keys)


def test_another_user_cannot_open_the_stream(local_stack: Stack) -> None:
    with local_stack.client() as client:
        owner = sign_up_and_log_in(client, f"owner-{uuid.uuid4().hex[:8]}")
        other = sign_up_and_log_in(client, f"other-{uuid.uuid4().hex[:8]}")
        task = client.post("/v1/animations", json=SMALL, headers=owner).json()
        url = f"/v1/animations/{task['id']}/events"
        assert client.get(url, headers=other).status_code == 404
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer forged"}).status_code == 401
        assert client.get(f"/v1/animations/{uuid.uuid4()}/events", headers=owner).status_code == (
            404
        )
        wait_for_state(client, owner, task["id"], {"succeeded", "failed"})


def test_a_stream_ends_when_its_task_is_deleted_with_its_account(local_stack: Stack) -> None:
    from fractal.cli.client import iter_server_events

    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, f"leaver-{uuid.uuid4().hex[:8]}")
        spec = {**SMALL, "width": 320, "height": 240, "frames": 240, "max_iter": 2000}
        task = client.post("/v1/animations", json=spec, headers=headers).json()
        with client.stream("GET", f"/v1/animations/{task['id']}/events", headers=headers) as r:
            events = iter_server_events(r.iter_lines())
            first = next(events)
            assert first.event == "progress"
            assert client.delete("/v1/users/me", headers=headers).status_code == 204
            rest = list(events)
        assert rest and rest[-1].event == "gone"


# -- the page and the offline docs ------------------------------------------------------------


def test_the_studio_page_and_its_assets_come_from_the_api(local_stack: Stack) -> None:
    with local_stack.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        script = client.get("/studio/js/main.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert script.headers["cache-control"] == "no-cache" and script.headers["etag"]
        assert client.get("/studio/../main.py").status_code == 404


def test_the_api_docs_use_no_cdn(local_stack: Stack) -> None:
    with local_stack.client() as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            assert "cdn." not in html and "https://" not in html.replace(
                "https://fastapi.tiangolo.com", ""
            )
        docs = client.get("/docs").text
        assert "/static-offline-docs/swagger-ui-bundle.js" in docs
        bundle = client.get("/static-offline-docs/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_every_studio_asset_ships_with_the_package() -> None:
    """`pip install` (and the Docker image) must carry the page: every file under
    api/studio/ is matched by the package-data globs of pyproject.toml."""
    import tomllib

    from tests.stack import ROOT

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api"]
    package = ROOT / "api"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    assets = {path for path in (package / "studio").rglob("*") if path.is_file()}
    assert assets and assets - shipped == set()
