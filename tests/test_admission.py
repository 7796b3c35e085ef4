"""Admission (fractal/admission.py), quotas (fractal/usage.py) and expiry (api/expiry.py):
nothing admitted can exceed a worker's memory or a user's CPU budget, and old videos go."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fractal import admission
from fractal.admission import AdmissionLimits, estimate_cost, refusal
from fractal.db import CpuUsage, Task, User, make_engine, make_session_factory, utcnow
from fractal.spec import AnimationSpec
from fractal.storage import poster_key
from tests.stack import Stack, make_settings, serve_api, sign_up_and_log_in, wait_for_state

# The request of the report: under the old work cap, about an hour of CPU on 2 cores and
# 3.1 GB on a worker.
ISSUE_EXAMPLE = {"width": 3840, "height": 2160, "supersample": 4, "frames": 3600, "max_iter": 1}
# Its 2-frame version: cheap, but 2.1 GB for one chunk, above the chart's 2 Gi worker.
TWO_FRAMES = {**ISSUE_EXAMPLE, "frames": 2}
CHART_WORKER = AdmissionLimits(
    max_cpu_seconds=3600, worker_memory_bytes=2 * 1024**3, worker_slots=2
)


def spec(**values: Any) -> AnimationSpec:
    return AnimationSpec.model_validate(values)


def test_the_reported_request_is_refused_for_its_cpu_and_its_memory() -> None:
    estimate = estimate_cost(spec(**ISSUE_EXAMPLE), 24)
    assert estimate.cpu_seconds > 7200  # the measured hour on two cores, at least
    assert "CPU-seconds" in (refusal(estimate, CHART_WORKER) or "")
    two = estimate_cost(spec(**TWO_FRAMES), 24)
    assert two.worker_memory_bytes(1) > 2 * 1024**3  # measured 2.1 GB for one chunk
    reason = refusal(two, CHART_WORKER) or ""
    assert "memory" in reason and "MiB" in reason


def test_ordinary_animations_are_admitted() -> None:
    for values in (
        {},
        {"width": 1920, "height": 1080, "frames": 600},
        {"supersample": 2, "colormap": "fire", "frames": 240},
        {"c": [0.25, 0.0], "max_iter": 2000},
    ):
        assert refusal(estimate_cost(spec(**values), 24), CHART_WORKER) is None, values


def test_every_cost_grows_with_what_drives_it() -> None:
    base = estimate_cost(spec(), 24)
    more_frames = estimate_cost(spec(frames=240), 24)
    assert more_frames.cpu_seconds > 1.9 * base.cpu_seconds
    assert more_frames.output_bytes > 1.9 * base.output_bytes
    assert more_frames.chunk_memory_bytes == base.chunk_memory_bytes  # frames stream
    supersampled = estimate_cost(spec(supersample=2), 24)
    assert supersampled.cpu_seconds > 2 * base.cpu_seconds
    assert supersampled.chunk_memory_bytes > base.chunk_memory_bytes
    smooth = estimate_cost(spec(colormap="ocean"), 24)
    assert smooth.cpu_seconds > base.cpu_seconds
    inside = estimate_cost(
        spec(c=[0.25, 0.0], max_iter=5000, path={"kind": "rotate", "step": 0}), 24
    )
    assert inside.cpu_seconds > 10 * estimate_cost(spec(c=[0.25, 0.0], max_iter=50), 24).cpu_seconds
    assert base.worker_memory_bytes(2) == admission.WORKER_BASE_BYTES + 2 * base.chunk_memory_bytes


def test_the_kernel_estimate_follows_the_per_frame_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new fractal or deep zoom extends fractal.chunks.frame_costs; the estimate follows."""
    animation = spec(frames=10)
    before = estimate_cost(animation, 24).cpu_seconds
    monkeypatch.setattr(admission, "frame_costs", lambda s: [11.0] * s.frame_count)
    after = estimate_cost(animation, 24).cpu_seconds
    samples = animation.pixels * 10
    extra = admission.CPU_MARGIN * admission.KERNEL_SECONDS_PER_SAMPLE_COST * samples * 10
    assert after - before == pytest.approx(extra, rel=0.02)


def _count(database_url: str, model: Any, *where: Any) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(select(func.count()).select_from(model).where(*where)) or 0
            )
    finally:
        engine.dispose()


def test_the_api_refuses_what_could_never_run(local_stack: Stack) -> None:
    database = local_stack.settings.database_url or ""
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "too-big")
        user_id = uuid.UUID(client.get("/v1/users/me", headers=headers).json()["id"])
        before = submissions_by_outcome(client)
        costly = client.post("/v1/animations", json=ISSUE_EXAMPLE, headers=headers)
        assert costly.status_code == 422
        assert "estimated" in costly.json()["detail"] and "CPU-seconds" in costly.json()["detail"]
        assert "RateLimit-Limit" in costly.headers  # the submission was counted
        huge = client.post("/v1/animations", json=TWO_FRAMES, headers=headers)
        assert huge.status_code == 422 and "memory" in huge.json()["detail"], huge.text
        after = submissions_by_outcome(client)
        for outcome in ("too_costly", "too_much_memory"):
            assert after.get(outcome, 0) == before.get(outcome, 0) + 1, outcome
    assert _count(database, Task, Task.owner_id == user_id) == 0


@pytest.fixture
def quota_api(tmp_path: Path, postgres_url: str, redis_url: str, temporal_address: str) -> Any:
    def start(**overrides: Any) -> Any:
        settings = make_settings(
            tmp_path / uuid.uuid4().hex[:6],
            database_url=postgres_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            max_active_tasks=100,
            **overrides,
        )
        return serve_api(settings)

    return start


SMALL = {"width": 160, "height": 120, "frames": 48, "max_iter": 100}


def submissions_by_outcome(client: httpx.Client) -> dict[str, int]:
    """fractal_api_submissions_total of the API behind ``client``, the outcomes seen."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "fractal_api_submissions_total" and sample.value:
                counts[sample.labels["outcome"]] = int(sample.value)
    return counts


def test_the_daily_cpu_quota(quota_api: Any, postgres_url: str) -> None:
    per_task = estimate_cost(spec(**SMALL), 24).cpu_seconds
    with (
        quota_api(cpu_seconds_per_day=per_task * 2.5) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        headers = sign_up_and_log_in(client, f"cpu-{uuid.uuid4().hex[:6]}")
        user_id = uuid.UUID(client.get("/v1/users/me", headers=headers).json()["id"])
        codes = [client.post("/v1/animations", json=SMALL, headers=headers) for _ in range(3)]
        assert [r.status_code for r in codes] == [202, 202, 429]
        refused = codes[2]
        assert "daily CPU quota" in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 24 * 3600
        # More than a whole day's quota is refused for good (422), not "wait".
        big = client.post("/v1/animations", json={**SMALL, "frames": 480}, headers=headers)
        assert big.status_code == 422 and "daily quota" in big.json()["detail"]
        # A task canceled before any worker started it cost nothing: its reservation is
        # replaced by what it measured (0), which makes room for one more.
        first = codes[0].json()["id"]
        canceled = client.delete(f"/v1/animations/{first}", headers=headers)
        assert canceled.status_code == 202 and canceled.json()["state"] == "canceled"
        assert client.post("/v1/animations", json=SMALL, headers=headers).status_code == 202
        # Deleting a finished task does not give its CPU back.
        assert client.delete(f"/v1/animations/{first}", headers=headers).status_code == 204
        assert client.post("/v1/animations", json=SMALL, headers=headers).status_code == 429
        # Each refusal counted under its own outcome (this API's own metrics).
        assert submissions_by_outcome(client) == {
            "accepted": 3,
            "cpu_quota": 2,
            "too_costly": 1,
        }
    assert _count(postgres_url, Task, Task.owner_id == user_id) == 2
    used = _count(postgres_url, CpuUsage, CpuUsage.user_id == user_id)
    assert used == 1


def test_the_storage_quota(quota_api: Any, postgres_url: str) -> None:
    per_task = estimate_cost(spec(**SMALL), 24).output_bytes
    with (
        quota_api(stored_bytes_per_user=int(per_task * 1.5)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        headers = sign_up_and_log_in(client, f"bytes-{uuid.uuid4().hex[:6]}")
        assert client.post("/v1/animations", json=SMALL, headers=headers).status_code == 202
        refused = client.post("/v1/animations", json=SMALL, headers=headers)
        assert refused.status_code == 429 and "storage quota" in refused.json()["detail"]
        # Nothing will expire to make room (no finished video yet): no Retry-After.
        assert "Retry-After" not in refused.headers
        too_big = client.post("/v1/animations", json={**SMALL, "frames": 480}, headers=headers)
        assert too_big.status_code == 422 and "storage quota" in too_big.json()["detail"]
        assert submissions_by_outcome(client) == {
            "accepted": 1,
            "storage_quota": 1,
            "too_large_to_store": 1,
        }


@pytest.mark.slow
def test_a_finished_task_is_charged_what_it_measured(local_stack: Stack) -> None:
    database = local_stack.settings.database_url or ""
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "measured-user")
        task = client.post("/v1/animations", json=SMALL, headers=headers).json()
        done = wait_for_state(client, headers, task["id"], {"succeeded", "failed", "canceled"})
        assert done["state"] == "succeeded", done
    engine = make_engine(database)
    try:
        with make_session_factory(engine)() as session:
            row = session.get(Task, uuid.UUID(task["id"]))
            assert row is not None and row.cpu_seconds is not None
            assert 0 < row.cpu_seconds < row.estimated_cpu_seconds
            charged = session.scalar(
                select(func.sum(CpuUsage.cpu_seconds)).where(CpuUsage.user_id == row.owner_id)
            )
            assert charged == pytest.approx(row.cpu_seconds)
    finally:
        engine.dispose()


def test_expired_animations_are_deleted_once_by_concurrent_sweeps(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    from api.context import AppContext
    from api.expiry import expire_batch

    settings = make_settings(tmp_path, database_url=postgres_url, redis_url=redis_url)
    contexts = [AppContext.from_settings(settings) for _ in range(3)]
    store = contexts[0].store
    source = tmp_path / "video.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    now = utcnow()
    with contexts[0].sessions() as session:
        user = User(username=f"old-{uuid.uuid4().hex[:6]}", password_hash="x", created_at=now)
        session.add(user)
        session.flush()
        old: list[uuid.UUID] = []
        young: list[uuid.UUID] = []
        for index in range(30):
            age = timedelta(hours=48) if index < 25 else timedelta(minutes=5)
            task = Task(
                owner_id=user.id,
                spec={},
                frames_total=1,
                frames_done=1,
                state="succeeded" if index % 3 else "failed",
                created_at=now - age,
                finished_at=now - age,
                estimated_cpu_seconds=1.0,
                estimated_bytes=1,
            )
            session.add(task)
            session.flush()
            if task.state == "succeeded":
                task.video_key = f"videos/{task.id}.mp4"
                task.video_size = store.put_file(task.video_key, source)
                task.poster_key = poster_key(str(task.id))
                store.put_file(task.poster_key, source, "image/webp")
            (old if index < 25 else young).append(task.id)
        session.commit()
        user_id = user.id

    counts: list[int] = []
    barrier = threading.Barrier(len(contexts))

    def sweep(context: AppContext) -> None:
        barrier.wait()
        total = 0
        while count := expire_batch(context, timedelta(hours=24)):
            total += count
        counts.append(total)

    threads = [threading.Thread(target=sweep, args=(context,)) for context in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for context in contexts:
        context.close()
    assert sum(counts) == 25  # each expired row deleted exactly once
    remaining = _count(postgres_url, Task, Task.owner_id == user_id)
    assert remaining == 5
    keys = "".join(store.list_keys("videos/"))
    assert all(str(task_id) not in keys for task_id in old)  # videos and posters alike
    for suffix in (".mp4", ".webp"):
        assert sum(f"{task_id}{suffix}" in keys for task_id in young) == sum(
            1 for index in range(25, 30) if index % 3
        ), suffix
