"""The Dockerfile and the Kind scripts, proven offline: hadolint and shellcheck pass, and the
pieces that must agree (image, chart values, Kind port mappings, Traefik NodePorts) do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy_support import CHART_DIR, KIND_DIR, ROOT, load_kind_values

DOCKERFILE = ROOT / "Dockerfile"
SCRIPTS = sorted(KIND_DIR.glob("*.sh"))


def tool(name: str) -> str:
    """A linter installed with the dev dependencies (next to this Python), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: pip install -e '.[dev]' installs it")
    return found


def match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not found"
    return found[1]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


# --- Dockerfile -------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped) grouped by stage."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.strip().startswith("#"):
            continue
        current += raw.rstrip("\\").strip() + " " if raw.endswith("\\") else raw.strip()
        if not raw.endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_image_is_multi_stage_slim_non_root_and_warm() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "a build stage and a runtime stage"
    text = DOCKERFILE.read_text()
    assert re.search(r"python:3\.11[\w.-]*-slim", text)
    runtime = stages[-1]
    # Only the built virtualenv crosses over; no compilers or package managers in runtime.
    assert any(line.startswith("COPY --from=build /opt/venv") for line in runtime)
    assert not any(re.search(r"apt-get install|pip install", line) for line in runtime)
    user = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert user and not user[-1].startswith(("root", "0")), user
    assert any("NUMBA_CACHE_DIR=" in line for line in runtime if line.startswith("ENV"))
    run_lines = [line for line in runtime if line.startswith("RUN ")]
    assert run_lines[-1] == "RUN fractal warmup", "the Numba cache is warmed as the app user"
    assert runtime.index(run_lines[-1]) > runtime.index(
        next(x for x in runtime if x.startswith("USER"))
    )
    assert any(line == 'ENTRYPOINT ["fractal"]' for line in runtime)
    assert any(line == 'CMD ["api"]' for line in runtime)


def test_image_user_matches_the_chart_security_context() -> None:
    chart_values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    uid = re.search(r"ARG APP_UID=(\d+)", DOCKERFILE.read_text())
    assert uid is not None
    assert chart_values["podSecurityContext"]["runAsUser"] == int(uid[1])


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".venv", "data", "*.mp4"):
        assert entry in ignored
    for needed in ("README.md", "pyproject.toml", "fractal", "api", "activities", "workflows"):
        assert needed not in ignored


# --- Kind -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_kind_scripts_pass_shellcheck(script: Path) -> None:
    result = run(tool("shellcheck"), "--severity=style", "--external-sources", str(script))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_kind_scripts_are_strict_and_executable(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    assert run("bash", "-n", str(script)).returncode == 0


def test_kind_scripts_exist() -> None:
    assert {path.name for path in SCRIPTS} >= {"up.sh", "down.sh"}


def test_kind_port_mappings_match_traefik_and_the_chart() -> None:
    cluster = yaml.safe_load((KIND_DIR / "cluster.yaml").read_text())
    assert cluster["kind"] == "Cluster"
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    mappings = {
        m["containerPort"]: m["hostPort"]
        for node in cluster["nodes"]
        for m in node["extraPortMappings"]
    }
    up = (KIND_DIR / "up.sh").read_text()
    traefik = yaml.safe_load((KIND_DIR / "traefik-values.yaml").read_text())
    web = traefik["ports"]["web"]["nodePort"]
    websecure = traefik["ports"]["websecure"]["nodePort"]
    assert set(mappings) == {web, websecure}
    # Presigned URLs and printed URLs carry the host port Traefik's web entry point is on.
    assert load_kind_values()["ingress"]["publicPort"] == mappings[web]
    assert int(match(r"GATEWAY_PORT=(\d+)", up)) == mappings[web]
    assert cluster["name"] == match(r"CLUSTER_NAME:-(\w+)", up)


def test_kind_values_use_the_locally_loaded_image() -> None:
    values = load_kind_values()
    assert values["image"]["pullPolicy"] == "Never", "kind load puts it on the node"
    up = (KIND_DIR / "up.sh").read_text()
    assert "kind load docker-image" in up
    assert "docker build" in up
    assert '--values "${KIND_DIR}/values.yaml"' in up


def test_smoke_test_walks_the_whole_api() -> None:
    up = (KIND_DIR / "up.sh").read_text()
    for step in (
        "/v1/auth/signup",
        "/v1/auth/token",
        "/v1/animations",
        '{"width":160,"height":120,"frames":24}',
        "succeeded",
        "/video",
        "ftyp",
    ):
        assert step in up, step
