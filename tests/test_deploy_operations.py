"""Issue 11's defects of the Kind install and the chart's operations features, proven
offline: each test names the defect it guards against (numbers of the issue's list)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.server import GRACEFUL_SHUTDOWN_SECONDS
from fractal.settings import Settings
from tests.deploy_support import (
    CHART_DIR,
    KIND_DIR,
    KUBE_VERSIONS,
    ROOT,
    Rendered,
    load_kind_values,
    render,
    scenarios,
)

pytest.importorskip("helm_python", reason="dev dependency helm-python-sdk")

SCENARIOS = scenarios()
UP = (KIND_DIR / "up.sh").read_text()
TRAEFIK_VALUES = yaml.safe_load((KIND_DIR / "traefik-values.yaml").read_text())
CLUSTER = yaml.safe_load((KIND_DIR / "cluster.yaml").read_text())
APP_COMPONENTS = ("api", "worker", "migrate")


@cache
def rendered(name: str) -> Rendered:
    return render(SCENARIOS[name])


@pytest.fixture(params=sorted(SCENARIOS))
def chart(request: pytest.FixtureRequest) -> Rendered:
    return rendered(request.param)


def pod_of(chart: Rendered, kind: str, component: str) -> dict[str, Any]:
    return chart.component(kind, component)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env") or []}


# --- 1. Traefik's Service type ------------------------------------------------------------


def test_traefik_gets_a_node_port_service_through_the_keys_of_chart_v40_and_later() -> None:
    """`--set service.type=NodePort` is ignored by Traefik's chart >= 40 (the key is
    service.spec.type): the Service stayed LoadBalancer and `--wait` timed out on Kind.
    Rendering the real chart 41.3.0 with the old flags gives `type: LoadBalancer`, with
    kind/traefik-values.yaml `NodePort` (see the next test)."""
    assert "type" not in TRAEFIK_VALUES["service"], "service.type is not a key since v40"
    assert TRAEFIK_VALUES["service"]["spec"]["type"] == "NodePort"
    node_ports = {name: port["nodePort"] for name, port in TRAEFIK_VALUES["ports"].items()}
    host_ports = {
        mapping["containerPort"]: mapping["hostPort"]
        for node in CLUSTER["nodes"]
        for mapping in node["extraPortMappings"]
    }
    assert set(node_ports.values()) == set(host_ports)
    assert host_ports[node_ports["web"]] == load_kind_values()["ingress"]["publicPort"]
    assert '--values "${KIND_DIR}/traefik-values.yaml"' in UP
    assert "service.type" not in UP and "--set ports." not in UP
    for doc in (ROOT / "docs" / "deployment.md", CHART_DIR / "README.md"):
        assert "service.type=NodePort" not in doc.read_text(), doc


@pytest.mark.skipif(
    not os.environ.get("FRACTAL_TRAEFIK_CHART"),
    reason="set FRACTAL_TRAEFIK_CHART to an unpacked traefik/traefik chart "
    "(helm pull traefik/traefik --version 41.3.0 --untar) to render it",
)
def test_the_real_traefik_chart_renders_a_node_port_service() -> None:
    import helm_python

    traefik = helm_python.Chart.load(os.environ["FRACTAL_TRAEFIK_CHART"])
    pinned = re.search(r"TRAEFIK_CHART_VERSION:-([0-9.]+)", UP)
    assert pinned and traefik.metadata["version"] == pinned[1]
    traefik.validate_schema(TRAEFIK_VALUES)
    manifests = traefik.render(
        TRAEFIK_VALUES, name="traefik", namespace="traefik", is_install=True, is_upgrade=False
    )
    services = [
        doc
        for path, text in manifests.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict) and doc.get("kind") == "Service"
    ]
    (service,) = services
    assert service["spec"]["type"] == "NodePort"
    ports = {port["name"]: port.get("nodePort") for port in service["spec"]["ports"]}
    assert ports == {"web": 30080, "websecure": 30443}


# --- 2. Kubernetes version of the Kind node -----------------------------------------------


def test_the_kind_node_runs_a_kubernetes_the_chart_accepts() -> None:
    """kind 0.20's default node is Kubernetes 1.27, which kubeVersion >= 1.29 refuses."""
    (node,) = CLUSTER["nodes"]
    image = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}", node["image"])
    assert image, node["image"]
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    minimum = re.match(r">=\s*(\d+)\.(\d+)", chart["kubeVersion"])
    assert minimum
    assert (int(image[1]), int(image[2])) >= (int(minimum[1]), int(minimum[2]))
    # The manifests are validated against that very minor version.
    assert f"{image[1]}.{image[2]}.0" in KUBE_VERSIONS
    assert 'MIN_KIND_VERSION="0.33.0"' in UP


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("0.33.0", True),
        ("0.33.1", True),
        ("0.40.0", True),
        ("1.0.0", True),
        ("0.32.9", False),
        ("0.20.0", False),
        ("", False),
    ],
)
def test_up_sh_refuses_a_kind_too_old_for_the_node_image(version: str, ok: bool) -> None:
    function = re.search(r"version_at_least\(\) \{.*?\n\}", UP, re.DOTALL)
    assert function
    script = f'{function[0]}\nversion_at_least "{version}" 0.33.0'
    assert (subprocess.run(["bash", "-c", script], check=False).returncode == 0) is ok


# --- 3. service links ---------------------------------------------------------------------


def service_link_variables(chart: Rendered) -> dict[str, str]:
    """What the kubelet would inject into every pod of the namespace for its Services
    (docker links style: <NAME>_PORT=tcp://..., <NAME>_SERVICE_HOST, ...)."""
    variables = {}
    for service in chart.of_kind("Service"):
        name = re.sub(r"[^A-Z0-9]", "_", service["metadata"]["name"].upper())
        first = service["spec"]["ports"][0]
        variables[f"{name}_SERVICE_HOST"] = "10.96.0.10"
        variables[f"{name}_SERVICE_PORT"] = str(first["port"])
        variables[f"{name}_PORT"] = f"tcp://10.96.0.10:{first['port']}"
    return variables


def test_service_links_are_off_so_a_fractal_release_cannot_break_the_settings() -> None:
    """With fullnameOverride=fractal the Service `fractal-api` injects FRACTAL_API_PORT=
    tcp://..., which the worker's and the migrate Job's settings could not parse."""
    chart = render({"fullnameOverride": "fractal"})
    links = service_link_variables(chart)
    assert links["FRACTAL_API_PORT"].startswith("tcp://")
    with pytest.raises(ValueError, match="api_port"):
        Settings.model_validate(
            {
                name[len("FRACTAL_") :].lower(): value
                for name, value in links.items()
                if name.startswith("FRACTAL_")
            }
        )
    for workload in chart.workloads():
        pod = workload["spec"]["template"]["spec"]
        assert pod["enableServiceLinks"] is False, workload["metadata"]["name"]


def test_every_pod_of_every_render_turns_service_links_off(chart: Rendered) -> None:
    for workload in chart.workloads():
        assert workload["spec"]["template"]["spec"]["enableServiceLinks"] is False


# --- 4. client addresses behind Traefik ---------------------------------------------------


def test_the_api_trusts_the_gateway_for_forwarded_client_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from api.server import server_config

    chart = rendered("kind")
    api = pod_of(chart, "Deployment", "api")["containers"][0]
    # The API's own setting (api/main.py applies it); uvicorn's proxy handling stays off.
    monkeypatch.setenv("FRACTAL_TRUSTED_PROXIES", env_of(api)["FRACTAL_TRUSTED_PROXIES"]["value"])
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    trusted = settings.trusted_proxies
    assert trusted == [CLUSTER["networking"]["podSubnet"]] == ["10.244.0.0/16"]
    assert server_config(None, settings).proxy_headers is False
    for name in ("defaults", "kind"):
        env = env_of(pod_of(rendered(name), "Deployment", "api")["containers"][0])
        assert "FORWARDED_ALLOW_IPS" not in env, name

    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["client"] = scope["client"]

    import asyncio

    middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]

    def client_seen(peer: str) -> str:
        scope = {
            "type": "http",
            "scheme": "http",
            "client": (peer, 5000),
            "headers": [(b"x-forwarded-for", b"203.0.113.7")],
        }
        asyncio.run(middleware(scope, None, None))  # type: ignore[arg-type]
        return str(seen["client"][0])

    assert client_seen("10.244.0.17") == "203.0.113.7"  # a Traefik pod: believed
    assert client_seen("192.0.2.1") == "192.0.2.1"  # anyone else: not
    assert TRAEFIK_VALUES["service"]["spec"]["externalTrafficPolicy"] == "Local"


# --- 5. image tag and loading -------------------------------------------------------------


def test_the_image_is_built_without_provenance_and_loaded_with_a_fallback() -> None:
    build = re.search(r"docker build ([^\n]*)", UP)
    assert build and "--provenance=false" in build[1]
    assert "kind load docker-image" in UP
    function = UP[UP.index("build_and_load_image() {") : UP.index("install_gateway() {")]
    assert "docker save --output" in function
    assert function.index("if ! kind load docker-image") < function.index("kind load image-archive")


# --- 6. host names that need no public DNS ------------------------------------------------


def test_no_host_name_depends_on_public_dns() -> None:
    for path in [*KIND_DIR.iterdir(), *CHART_DIR.rglob("*"), *(ROOT / "docs").glob("*.md")]:
        if path.is_file():
            assert "localtest.me" not in path.read_text(), path
    hosts = load_kind_values()["ingress"]["hosts"]
    assert all(host.endswith(".localhost") for host in hosts.values()), hosts
    assert re.search(r'curl --resolve "\$\{API_HOST\}:\$\{GATEWAY_PORT\}:127\.0\.0\.1"', UP)
    smoke = UP[UP.index("smoke_test() {") : UP.index("main() {")]
    assert not re.search(r"(?<!gateway_)curl ", smoke), "every smoke-test call pins the names"


# --- 7. presigned URLs without the ingress --------------------------------------------------


def test_notes_say_what_to_set_when_presigned_urls_would_point_inside_the_cluster() -> None:
    notes = rendered("static-workers-no-ingress").notes
    assert "minio.publicEndpoint" in notes and "port-forward svc/" in notes
    assert "fractal-fractal-server-minio:9000" in notes
    given = render({"ingress": {"enabled": False}, "minio": {"publicEndpoint": "media.example"}})
    assert "minio.publicEndpoint" not in given.notes
    assert "minio.publicEndpoint" not in rendered("kind").notes


# --- 8. read-only root filesystem ---------------------------------------------------------


def test_app_pods_run_read_only_and_get_the_warmed_numba_cache(chart: Rendered) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    image_cache = re.search(r"NUMBA_CACHE_DIR=(\S+)", dockerfile)
    assert image_cache
    for component in ("api", "worker"):
        pod = pod_of(chart, "Deployment", component)
        (app,) = pod["containers"]
        assert app["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in app["volumeMounts"]}
        assert mounts["/tmp"] == "tmp"  # chunk scratch files
        assert mounts[image_cache[1]] == "numba-cache"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["numba-cache"]
        (copy,) = [c for c in pod["initContainers"] if c["name"] == "numba-cache"]
        assert copy["command"][:3] == ["cp", "-a", f"{image_cache[1]}/."]
        (mount,) = copy["volumeMounts"]
        assert mount == {"name": "numba-cache", "mountPath": copy["command"][3].rstrip("/")}
    job = pod_of(chart, "Job", "migrate")
    assert job["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_cache_copy_command_copies_the_warmed_kernels(tmp_path: Path) -> None:
    pod = pod_of(rendered("defaults"), "Deployment", "worker")
    (copy,) = [c for c in pod["initContainers"] if c["name"] == "numba-cache"]
    source, target = tmp_path / "image-cache", tmp_path / "emptydir"
    (source / "fractal" / "engine").mkdir(parents=True)
    (source / "fractal" / "engine" / "kernel.nbi").write_bytes(b"index")
    target.mkdir()
    command = [
        copy["command"][0],
        copy["command"][1],
        copy["command"][2].replace(copy["command"][2][:-2], str(source)),
        str(target) + "/",
    ]
    subprocess.run(command, check=True)
    assert (target / "fractal" / "engine" / "kernel.nbi").read_bytes() == b"index"


# --- 9. graceful shutdown (grace period derived: tests/test_deploy_chart.py) -------------


def test_no_comment_or_schema_cites_a_30_s_heartbeat() -> None:
    heartbeat = Settings.model_fields["render_heartbeat_timeout_seconds"].default
    assert heartbeat == 20.0
    for path in (
        CHART_DIR / "values.yaml",
        CHART_DIR / "values.schema.json",
        *CHART_DIR.glob("templates/*"),
    ):
        text = path.read_text()
        assert not re.search(r"30 ?s(econds)? heartbeat|heartbeat[^.\n]{0,40}30 ?s", text), path


# --- 11. autoscaling on the queue, disruption budgets, network policies, preStop -----------


def test_keda_scales_workers_on_the_task_queue_instead_of_the_hpa() -> None:
    chart = rendered("operations")
    assert not chart.of_kind("HorizontalPodAutoscaler")
    (scaled,) = chart.of_kind("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    worker = chart.component("Deployment", "worker")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": worker["metadata"]["name"],
    }
    assert "replicas" not in worker["spec"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "temporal"
    env = env_of(worker["spec"]["template"]["spec"]["containers"][0])
    metadata = trigger["metadata"]
    assert metadata["endpoint"] == env["FRACTAL_TEMPORAL_ADDRESS"]["value"]
    assert metadata["taskQueue"] == env["FRACTAL_TEMPORAL_TASK_QUEUE"]["value"]
    assert metadata["namespace"] == env["FRACTAL_TEMPORAL_NAMESPACE"]["value"]
    assert set(metadata["queueTypes"].split(",")) == {"workflow", "activity"}
    assert all(isinstance(value, str) for value in metadata.values())  # KEDA wants strings
    assert int(metadata["targetQueueSize"]) >= 1
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 3)
    # The default stays the CPU HorizontalPodAutoscaler.
    assert rendered("defaults").of_kind("HorizontalPodAutoscaler")
    assert not rendered("defaults").of_kind("ScaledObject")


def test_disruption_budgets_exist_only_where_there_is_more_than_one_replica() -> None:
    budgets = {
        pdb["metadata"]["labels"]["app.kubernetes.io/component"]: pdb
        for pdb in rendered("operations").of_kind("PodDisruptionBudget")
    }
    assert set(budgets) == {"api", "worker"}
    for component, pdb in budgets.items():
        assert pdb["spec"]["minAvailable"] == 1
        selector = pdb["spec"]["selector"]["matchLabels"]
        pod_labels = rendered("operations").component("Deployment", component)["spec"]["template"][
            "metadata"
        ]["labels"]
        assert selector.items() <= pod_labels.items()
    assert not rendered("defaults").of_kind("PodDisruptionBudget")
    static = rendered("static-workers-no-ingress").of_kind("PodDisruptionBudget")
    assert [p["metadata"]["labels"]["app.kubernetes.io/component"] for p in static] == ["worker"]


def allowed_sources(chart: Rendered) -> dict[tuple[str, str], set[str] | None]:
    """(component, port) -> the components allowed in, or None for any source."""
    allowed: dict[tuple[str, str], set[str] | None] = {}
    for policy in chart.of_kind("NetworkPolicy"):
        target = policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in policy["spec"].get("ingress") or []:
            sources: set[str] | None = None
            if "from" in rule:
                sources = set()
                for peer in rule["from"]:
                    for expression in peer.get("podSelector", {}).get("matchExpressions", []):
                        sources |= set(expression["values"])
                    if "namespaceSelector" in peer:
                        sources.add("namespace:" + json.dumps(peer["namespaceSelector"]))
            for port in rule["ports"]:
                allowed[(target, port["port"])] = sources
    return allowed


def test_network_policies_allow_only_the_flows_of_the_diagram() -> None:
    chart = rendered("operations")
    deny = chart.named("NetworkPolicy", "-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    assert deny["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "fractal"}
    keda = 'namespace:{"matchLabels": {"kubernetes.io/metadata.name": "keda"}}'
    assert allowed_sources(chart) == {
        ("api", "http"): None,  # the gateway, from its own namespace
        ("api", "metrics"): None,  # Prometheus
        ("worker", "metrics"): None,
        ("postgresql", "postgresql"): {"api", "worker", "migrate"},
        ("redis", "redis"): {"api"},
        ("temporal", "grpc"): {"api", "worker", keda},
        ("temporal", "ui"): None,
        ("minio", "s3"): None,  # browsers follow presigned URLs through the gateway
        ("jaeger", "otlp-http"): {"api", "worker"},
        ("jaeger", "ui"): None,
    }
    # Every port a policy names exists on the pods it selects.
    for policy in chart.of_kind("NetworkPolicy"):
        component = policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        if component is None:
            continue
        workload = next(
            w
            for w in chart.workloads()
            if w["metadata"]["labels"]["app.kubernetes.io/component"] == component
        )
        ports = {
            port["name"]
            for container in workload["spec"]["template"]["spec"]["containers"]
            for port in container.get("ports", [])
        }
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= ports, policy["metadata"]["name"]
    assert not rendered("defaults").of_kind("NetworkPolicy")
    assert [p for p in rendered("kind").of_kind("NetworkPolicy")]


def test_the_api_pauses_before_shutting_down() -> None:
    for name in ("defaults", "kind"):
        pod = pod_of(rendered(name), "Deployment", "api")
        (api,) = pod["containers"]
        command = api["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep" and int(command[1]) > 0
        # The pause, then uvicorn's graceful shutdown (api/server.py) fit the grace.
        assert pod["terminationGracePeriodSeconds"] > int(command[1]) + GRACEFUL_SHUTDOWN_SECONDS


# --- 12. Temporal over TLS, with an API key -------------------------------------------------


def test_temporal_tls_and_api_key_come_from_secrets() -> None:
    chart = rendered("operations")
    for component in ("api", "worker"):
        pod = pod_of(chart, "Deployment", component)
        (container,) = pod["containers"]
        env = env_of(container)
        assert env["FRACTAL_TEMPORAL_TLS"]["value"] == "true"
        assert env["FRACTAL_TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "temporal-api-key",
            "key": "api-key",
        }
        mount = next(m for m in container["volumeMounts"] if m["name"] == "temporal-tls")
        for variable, file in (
            ("FRACTAL_TEMPORAL_TLS_SERVER_CA_FILE", "ca.crt"),
            ("FRACTAL_TEMPORAL_TLS_CLIENT_CERT_FILE", "tls.crt"),
            ("FRACTAL_TEMPORAL_TLS_CLIENT_KEY_FILE", "tls.key"),
        ):
            assert env[variable]["value"] == f"{mount['mountPath']}/{file}"
        volume = next(v for v in pod["volumes"] if v["name"] == "temporal-tls")["secret"]
        assert volume["secretName"] == "temporal-client-tls"
        assert {item["path"] for item in volume["items"]} == {"ca.crt", "tls.crt", "tls.key"}
    # Server TLS only (the system CAs, no client certificate): no file settings at all.
    plain = render(
        {"temporal": {"enabled": False, "address": "ns.tmprl.cloud:7233", "tls": {"enabled": True}}}
    )
    env = env_of(pod_of(plain, "Deployment", "api")["containers"][0])
    assert env["FRACTAL_TEMPORAL_TLS"]["value"] == "true"
    assert not [name for name in env if name.startswith("FRACTAL_TEMPORAL_TLS_")]
    assert "FRACTAL_TEMPORAL_TLS" not in env_of(
        pod_of(rendered("defaults"), "Deployment", "api")["containers"][0]
    )


# --- observability ------------------------------------------------------------------------


def test_metrics_ports_and_monitors() -> None:
    chart = rendered("operations")
    api = pod_of(chart, "Deployment", "api")["containers"][0]
    worker = pod_of(chart, "Deployment", "worker")["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert env_of(api)["FRACTAL_API_METRICS_PORT"]["value"] == str(ports["metrics"])
    assert ports["metrics"] != ports["http"]
    worker_port = {p["name"]: p["containerPort"] for p in worker["ports"]}["metrics"]
    assert env_of(worker)["FRACTAL_WORKER_METRICS_PORT"]["value"] == str(worker_port)
    service = chart.component("Service", "api")
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    # The gateway routes the API's http port only.
    ingress = chart.component("Ingress", "api")
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {
        "name": "http"
    }
    (monitor,) = chart.of_kind("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (pods,) = chart.of_kind("PodMonitor")
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert pods["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    for kind in ("ServiceMonitor", "PodMonitor", "ConfigMap"):
        assert not rendered("defaults").of_kind(kind)


def dashboard() -> dict[str, Any]:
    return json.loads((CHART_DIR / "dashboards" / "fractal-server.json").read_text())  # type: ignore[no-any-return]


def dashboard_metric_names() -> set[str]:
    names = set()
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            names |= set(re.findall(r"\b((?:fractal|temporal)_[a-z_]+)\b", target["expr"]))
    return names


def test_the_grafana_dashboard_is_a_sidecar_config_map_of_known_metrics() -> None:
    (config_map,) = rendered("operations").of_kind("ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["fractal-server.json"]) == dashboard()
    from activities import metrics as render_metrics
    from api.observability import ApiMetrics

    api_names = {family.name for family in ApiMetrics.create().registry.collect()}
    render_names = {
        value
        for name, value in vars(render_metrics).items()
        if name.isupper() and isinstance(value, str) and value.startswith("fractal_")
    }
    for name in dashboard_metric_names():
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        if name.startswith("fractal_api_"):
            assert base in api_names, name
        elif name.startswith("fractal_render_"):
            assert base in render_names, name
    # Temporal's names are checked against a live worker in tests/test_observability.py.
    assert {p["gridPos"]["x"] + p["gridPos"]["w"] for p in dashboard()["panels"]} <= set(
        range(1, 25)
    )


def test_traces_go_to_the_bundled_jaeger_or_the_given_collector() -> None:
    kind = rendered("kind")
    env = env_of(pod_of(kind, "Deployment", "worker")["containers"][0])
    assert env["FRACTAL_OTLP_ENDPOINT"]["value"] == "http://fractal-fractal-server-jaeger:4318"
    jaeger = kind.component("Service", "jaeger")
    assert {p["name"]: p["port"] for p in jaeger["spec"]["ports"]} == {
        "otlp-http": 4318,
        "ui": 16686,
    }
    given = render({"tracing": {"otlpEndpoint": "http://collector.observability:4318"}})
    env = env_of(pod_of(given, "Deployment", "api")["containers"][0])
    assert env["FRACTAL_OTLP_ENDPOINT"]["value"] == "http://collector.observability:4318"
    assert not given.of_kind("Service") or not [
        s for s in given.of_kind("Service") if s["metadata"]["name"].endswith("-jaeger")
    ]
    off = env_of(pod_of(rendered("defaults"), "Deployment", "api")["containers"][0])
    assert "FRACTAL_OTLP_ENDPOINT" not in off
    assert off["FRACTAL_LOG_FORMAT"]["value"] == "json"


def test_the_chart_lints_with_every_operations_option() -> None:
    import helm_python

    report = helm_python.lint(str(CHART_DIR), SCENARIOS["operations"], strict=True)
    assert not [m for m in report["messages"] if m["severity"] > 1] + report["errors"]
