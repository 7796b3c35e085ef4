"""The Helm chart (deploy/helm/fractal-server), proven offline: it lints, renders with the
default values, with kind/values.yaml and with every backing service switched to an
external one; every manifest is valid Kubernetes; and the properties the deployment relies
on hold in every render (probes, resources, hardening, secrets, hooks, autoscaling, the
FRACTAL_* settings contract)."""

from __future__ import annotations

import base64
import re
from functools import cache
from typing import Any

import pytest

helm_python = pytest.importorskip("helm_python", reason="dev dependency helm-python-sdk")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from fractal.settings import Settings  # noqa: E402
from tests.deploy_support import (  # noqa: E402
    CHART_DIR,
    CUSTOM_KINDS,
    EXTERNAL_SECRET,
    EXTERNAL_SERVICES,
    KUBE_VERSIONS,
    NAMESPACE,
    Rendered,
    load_kind_values,
    merge,
    render,
    scenarios,
)

SCENARIOS = scenarios()

# Containers that serve no probe-able endpoint, and why.
WITHOUT_LIVENESS = {
    # A Temporal worker has no HTTP endpoint; its readiness probe checks Temporal is
    # reachable. Restarting it would not fix an outage, and a stuck activity is caught by
    # its heartbeat timeout (see templates/worker-deployment.yaml).
    "worker",
}

# Names that hold a credential (FRACTAL_ACCESS_TOKEN_MINUTES or FRACTAL_AUTH_ATTEMPTS_... do not).
SENSITIVE_ENV = re.compile(r"PASSWORD|SECRET|(_KEY|_TOKEN|_AUTH)$", re.IGNORECASE)
URL_WITH_USERINFO = re.compile(r"^[a-z0-9+.-]+://(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@")


@cache
def rendered(name: str) -> Rendered:
    return render(SCENARIOS[name])


@pytest.fixture(params=sorted(SCENARIOS))
def chart(request: pytest.FixtureRequest) -> Rendered:
    return rendered(request.param)


def pod_value(container: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    """A securityContext field as effective for the container (container wins over pod)."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


def app_env(chart: Rendered, deployment_suffix: str = "-api") -> dict[str, dict[str, Any]]:
    container = chart.named("Deployment", deployment_suffix)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return {entry["name"]: entry for entry in container["env"]}


# --- chart structure ---------------------------------------------------------------------


def test_chart_lints_strictly_with_each_value_set() -> None:
    for name, values in SCENARIOS.items():
        report = helm_python.lint(
            str(CHART_DIR), values, strict=True, kube_version=f"v{KUBE_VERSIONS[-1]}"
        )
        problems = [m for m in report["messages"] if m["severity"] > 1] + report["errors"]
        assert not problems, f"{name}: {problems}"


def test_one_resource_per_template_and_helpers_define_names() -> None:
    templates = sorted((CHART_DIR / "templates").iterdir())
    assert (CHART_DIR / "templates" / "_helpers.tpl") in templates
    for name, text in rendered("defaults").templates.items():
        documents = [doc for doc in text.split("\n---") if doc.strip()]
        assert len(documents) <= 1, f"{name} renders {len(documents)} resources"


def test_values_schema_rejects_mistakes() -> None:
    chart = helm_python.Chart.load(str(CHART_DIR))
    assert chart.schema is not None
    chart.validate_schema(load_kind_values())
    for bad in (
        {"worker": {"terminationGracePeriodSeconds": 120}},  # derived now, not a value
        {"worker": {"shutdownTimeoutSeconds": 0}},
        {"api": {"trustedProxies": ["not an address"]}},
        {"logs": {"format": "xml"}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"minio": {"bucket": "Not_A_Bucket"}},
        {"typo": True},
    ):
        with pytest.raises(helm_python.HelmValuesError):
            chart.validate_schema(bad)


# Traefik's own resources, which kubernetes-validate has no schema for: the fields the
# chart uses, as Traefik v3's CRD (traefik.io/v1alpha1 Middleware) defines them.
TRAEFIK_MIDDLEWARE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "traefik.io/v1alpha1"},
        "kind": {"const": "Middleware"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "basicAuth": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["secret"],
                    "properties": {
                        "secret": {"type": "string", "minLength": 1},
                        "realm": {"type": "string"},
                        "removeHeader": {"type": "boolean"},
                        "headerField": {"type": "string"},
                    },
                }
            },
        },
    },
    "additionalProperties": False,
}


def test_every_manifest_is_valid_kubernetes(chart: Rendered) -> None:
    import jsonschema

    assert chart.documents
    for document in chart.documents:
        if document["apiVersion"].startswith("traefik.io/"):
            jsonschema.validate(document, TRAEFIK_MIDDLEWARE)
            continue
        if (document["apiVersion"], document["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:  # pragma: no cover
                name = f"{document['kind']}/{document['metadata']['name']}"
                pytest.fail(f"{name} is invalid for Kubernetes {version}: {error}")


def test_names_and_labels_follow_helm_conventions(chart: Rendered) -> None:
    for document in chart.documents:
        metadata = document["metadata"]
        assert len(metadata["name"]) <= 63
        labels = metadata["labels"]
        assert labels["app.kubernetes.io/instance"] == "fractal"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/name"] == "fractal-server"


# --- pods: probes, resources, hardening -----------------------------------------------


def test_every_container_has_requests_and_limits(chart: Rendered) -> None:
    for where, container, _pod, _init in chart.containers():
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resources.get(kind, {}).get(resource), f"{where}: no {kind}.{resource}"


def test_every_container_runs_hardened_as_non_root(chart: Rendered) -> None:
    for where, container, pod, _init in chart.containers():
        context = container.get("securityContext") or {}
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not context.get("privileged"), where
        assert pod_value(container, pod, "runAsNonRoot") is True, where
        assert pod_value(container, pod, "seccompProfile") == {"type": "RuntimeDefault"}, where
        run_as = pod_value(container, pod, "runAsUser")
        assert run_as is None or run_as > 0, where


def test_long_running_containers_have_probes(chart: Rendered) -> None:
    for where, container, _pod, is_init in chart.containers():
        if is_init or where.startswith("Job/"):
            continue
        assert container.get("readinessProbe"), f"{where}: no readiness probe"
        if container["name"] not in WITHOUT_LIVENESS:
            assert container.get("livenessProbe"), f"{where}: no liveness probe"


def test_api_probes_use_healthz_and_readyz(chart: Rendered) -> None:
    api = chart.named("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["args"] == ["api"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["ports"][0]["containerPort"] == 8000
    service = chart.named("Service", "-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_no_service_account_token_is_mounted_but_the_credentials_jobs(chart: Rendered) -> None:
    for workload in chart.workloads():
        mounted = workload["spec"]["template"]["spec"]["automountServiceAccountToken"]
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        assert mounted is (component == "credentials"), workload["metadata"]["name"]


# --- credentials ------------------------------------------------------------------------


def test_credentials_reach_containers_only_by_secret_key_ref(chart: Rendered) -> None:
    for where, container, _pod, _init in chart.containers():
        defined_from_secrets = set()
        for entry in container.get("env") or []:
            name, value = entry["name"], entry.get("value")
            if "valueFrom" in entry:
                source = entry["valueFrom"]
                if "secretKeyRef" in source:
                    defined_from_secrets.add(name)
                continue
            assert not SENSITIVE_ENV.search(name), f"{where}: {name} is a literal value"
            match = URL_WITH_USERINFO.match(value or "")
            if match and match["password"] is not None:
                reference = re.fullmatch(r"\$\((\w+)\)", match["password"])
                assert reference, f"{where}: {name} embeds a literal password"
                assert reference[1] in defined_from_secrets, f"{where}: {name} -> {reference[1]}"
            for reference in re.findall(r"\$\((\w+)\)", value or ""):
                assert reference in defined_from_secrets, f"{where}: {name} uses $({reference})"
        assert not container.get("envFrom"), f"{where}: envFrom hides where values come from"


def test_rendering_is_deterministic_so_no_credential_changes_between_renders(
    chart: Rendered,
) -> None:
    """Without a cluster to `lookup` (helm template, Argo CD) the chart used to generate
    new passwords on every render, which the bundled Postgres and MinIO, holding the first
    ones in their volumes, then refused. Now no render contains a generated value."""
    again = render(chart.values)
    assert again.templates == chart.templates
    for template in (CHART_DIR / "templates").iterdir():
        source = template.read_text()
        assert "randAlpha" not in source and not re.search(r"\blookup\s+\"", source), template


def test_the_credentials_job_generates_every_credential_nobody_gave() -> None:
    chart = rendered("defaults")
    assert not chart.of_kind("Secret"), "no generated value is rendered"
    job = chart.component("Job", "credentials")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"  # before any pod
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    name, *keys = [arg for arg in container["args"][1:] if not arg.startswith("--")]
    assert container["args"][0] == "ensure-credentials"
    assert name == "fractal-fractal-server-credentials"
    assert dict(key.split(":") for key in keys) == {
        "jwt-secret": "48",
        "postgresql-password": "32",
        "redis-password": "32",
        "s3-access-key": "20",
        "s3-secret-key": "40",
    }
    # Its account may touch this Secret only (and create it), created before it runs.
    assert pod["serviceAccountName"] == "fractal-fractal-server-credentials"
    role = chart.component("Role", "credentials")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [name],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    binding = chart.component("RoleBinding", "credentials")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    for rbac in (role, binding, chart.component("ServiceAccount", "credentials")):
        weight = rbac["metadata"]["annotations"]["helm.sh/hook-weight"]
        assert int(weight) < int(annotations["helm.sh/hook-weight"])
    # Every generated credential is read from that Secret.
    env = app_env(chart)
    for variable in ("DATABASE_PASSWORD", "REDIS_PASSWORD", "FRACTAL_JWT_SECRET"):
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == name
    defaults = helm_python.Chart.load(str(CHART_DIR)).values
    assert defaults["app"]["jwt"]["secret"] == ""
    assert defaults["postgresql"]["password"] == ""
    assert defaults["redis"]["password"] == ""
    assert defaults["minio"]["accessKey"] == defaults["minio"]["secretKey"] == ""


def test_given_credentials_win_and_the_jwt_secret_is_always_set() -> None:
    chart = render({"app": {"jwt": {"secret": "given-jwt-secret"}}})
    given = chart.named("Secret", "-given-credentials")
    assert base64.b64decode(given["data"]["jwt-secret"]).decode() == "given-jwt-secret"
    assert app_env(chart)["FRACTAL_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": given["metadata"]["name"],
        "key": "jwt-secret",
    }
    args = chart.component("Job", "credentials")["spec"]["template"]["spec"]["containers"][0]
    assert not [arg for arg in args["args"] if arg.startswith("jwt-secret:")]
    for name in SCENARIOS:
        env = app_env(rendered(name))
        assert "secretKeyRef" in env["FRACTAL_JWT_SECRET"]["valueFrom"], name


def test_external_services_read_credentials_from_the_existing_secret() -> None:
    chart = rendered("external-all")
    assert not chart.of_kind("Secret"), "nothing to keep: every credential is external"
    assert not chart.of_kind("Role"), "nothing to generate either"
    env = app_env(chart)
    for name, key in (
        ("DATABASE_PASSWORD", "db-password"),
        ("REDIS_PASSWORD", "redis-password"),
        ("FRACTAL_S3_ACCESS_KEY", "access-key"),
        ("FRACTAL_S3_SECRET_KEY", "secret-key"),
        ("FRACTAL_JWT_SECRET", "jwt-secret"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": EXTERNAL_SECRET, "key": key}


# --- backing services switched on and off ---------------------------------------------


def test_bundled_services_by_default() -> None:
    chart = rendered("defaults")
    postgres = chart.named("StatefulSet", "-postgresql")
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = postgres["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 999
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    assert pod["containers"][0]["image"].startswith("postgres:")

    redis = chart.named("Deployment", "-redis")["spec"]["template"]["spec"]
    assert redis["securityContext"]["runAsUser"] == 999
    assert redis["containers"][0]["image"].startswith("redis:")

    minio = chart.named("StatefulSet", "-minio")
    assert minio["spec"]["volumeClaimTemplates"]
    assert minio["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000
    assert "minio/minio:" in minio["spec"]["template"]["spec"]["containers"][0]["image"]

    temporal = chart.named("Deployment", "-temporal")["spec"]["template"]["spec"]
    args = temporal["containers"][0]["args"]
    assert args[:2] == ["server", "start-dev"] and "0.0.0.0" in args
    assert temporal["containers"][0]["image"].startswith("temporalio/temporal:")
    assert chart.named("PersistentVolumeClaim", "-temporal")
    ports = {p["name"]: p["port"] for p in chart.named("Service", "-temporal")["spec"]["ports"]}
    assert ports == {"grpc": 7233, "ui": 8233}

    bucket_job = chart.named("Job", "-create-bucket")
    assert "post-install" in bucket_job["metadata"]["annotations"]["helm.sh/hook"]
    assert "mc" in bucket_job["spec"]["template"]["spec"]["containers"][0]["image"]

    env = app_env(chart)
    assert env["FRACTAL_TEMPORAL_ADDRESS"]["value"] == "fractal-fractal-server-temporal:7233"
    assert env["FRACTAL_S3_ENDPOINT"]["value"] == "fractal-fractal-server-minio:9000"
    assert env["FRACTAL_DATABASE_URL"]["value"] == (
        "postgresql+psycopg://fractal:$(DATABASE_PASSWORD)"
        "@fractal-fractal-server-postgresql:5432/fractal"
    )
    assert env["FRACTAL_REDIS_URL"]["value"] == (
        "redis://:$(REDIS_PASSWORD)@fractal-fractal-server-redis:6379/0"
    )


@pytest.mark.parametrize(
    ("service", "kind", "suffix"),
    [
        ("temporal", "Deployment", "-temporal"),
        ("postgresql", "StatefulSet", "-postgresql"),
        ("redis", "Deployment", "-redis"),
        ("minio", "StatefulSet", "-minio"),
    ],
)
def test_each_service_can_be_switched_to_an_external_one(
    service: str, kind: str, suffix: str
) -> None:
    chart = rendered(f"external-{service}")
    names = [doc["metadata"]["name"] for doc in chart.documents]
    assert not [name for name in names if name.endswith(suffix)], names
    env = app_env(chart)
    expected = {
        "temporal": ("FRACTAL_TEMPORAL_ADDRESS", "temporal-frontend.temporal.svc:7233"),
        "postgresql": (
            "FRACTAL_DATABASE_URL",
            "postgresql+psycopg://fractal:$(DATABASE_PASSWORD)@db.example.internal:5432/fractal"
            "?sslmode=require",
        ),
        "redis": ("FRACTAL_REDIS_URL", "rediss://:$(REDIS_PASSWORD)@redis.example.internal:6379/0"),
        "minio": ("FRACTAL_S3_ENDPOINT", "s3.eu-west-1.amazonaws.com"),
    }[service]
    assert env[expected[0]]["value"] == expected[1]
    assert rendered("defaults").named(kind, suffix)  # and it is there when enabled


def test_external_storage_settings() -> None:
    env = app_env(rendered("external-all"))
    assert env["FRACTAL_S3_SECURE"]["value"] == "true"
    assert env["FRACTAL_S3_REGION"]["value"] == "eu-west-1"
    assert env["FRACTAL_S3_BUCKET"]["value"] == "fractal-videos"
    assert env["FRACTAL_S3_PUBLIC_ENDPOINT"]["value"] == "s3.eu-west-1.amazonaws.com"
    kinds = {doc["kind"] for doc in rendered("external-all").documents}
    assert kinds == {
        "ServiceAccount",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "Ingress",
    }


def test_credentials_given_as_values_for_external_services() -> None:
    chart = rendered("external-values-credentials")
    data = chart.named("Secret", "-given-credentials")["data"]
    assert base64.b64decode(data["postgresql-password"]) == b"db-pass-1"
    assert base64.b64decode(data["s3-access-key"]) == b"AK1"
    assert "redis-password" not in data  # an external Redis without a password
    assert app_env(chart)["FRACTAL_REDIS_URL"]["value"] == "redis://redis:6379/0"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"postgresql": {"enabled": False, "existingSecret": "db"}}, "postgresql.host is required"),
        ({"postgresql": {"enabled": False, "host": "db"}}, "postgresql.existingSecret"),
        ({"temporal": {"enabled": False}}, "temporal.address is required"),
        ({"redis": {"enabled": False}}, "redis.host is required"),
        ({"minio": {"enabled": False, "endpoint": "s3:9000"}}, "minio.existingSecret"),
    ],
)
def test_missing_external_settings_fail_with_a_clear_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(values)


# --- migrations, workers, autoscaling --------------------------------------------------


def test_migration_job_is_an_ordinary_resource_named_by_its_spec() -> None:
    """No hook: `helm install --wait`, Flux and Argo CD wait for the release's resources,
    and a post-install hook waiting behind pods that wait for its schema deadlocked."""
    bundled = rendered("defaults").component("Job", "migrate")
    external = rendered("external-postgresql").component("Job", "migrate")
    for job in (bundled, external):
        assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {})
        assert "ttlSecondsAfterFinished" not in job["spec"]  # Argo CD would re-run it
        pod = job["spec"]["template"]["spec"]
        assert pod["containers"][0]["args"] == ["migrate"]
        assert pod["restartPolicy"] == "Never"
        assert [c["name"] for c in pod["initContainers"]] == ["wait-for-database"]
    # The pod template of a Job is immutable: its name changes with its spec, and only then.
    name = bundled["metadata"]["name"]
    assert re.fullmatch(r"fractal-fractal-server-migrate-[0-9a-f]{8}", name)
    assert render({}).component("Job", "migrate")["metadata"]["name"] == name
    upgraded = render({"image": {"tag": "0.2.0"}}).component("Job", "migrate")
    assert upgraded["metadata"]["name"] != name
    long_name = render({"fullnameOverride": "x" * 80}).component("Job", "migrate")
    assert len(long_name["metadata"]["name"]) <= 63
    for source in ("defaults", "kind", "customized"):
        assert not [
            doc
            for doc in rendered(source).documents
            if "hook" in str((doc["metadata"].get("annotations") or {}).get("helm.sh/hook"))
            and doc["kind"] != "Secret"
            and doc["metadata"]["labels"].get("app.kubernetes.io/component") != "create-bucket"
        ], source


def test_api_and_worker_wait_for_the_schema() -> None:
    for suffix in ("-api", "-worker"):
        pod = rendered("defaults").named("Deployment", suffix)["spec"]["template"]["spec"]
        init = pod["initContainers"][0]
        assert init["name"] == "wait-for-schema"
        assert init["command"] == ["fractal", "wait-for-database"]
        assert "--schema" in init["args"]


def test_worker_grace_period_derives_from_its_shutdown_timeout_and_one_activity_per_core(
    chart: Rendered,
) -> None:
    """The worker's own graceful shutdown (FRACTAL_WORKER_SHUTDOWN_TIMEOUT_SECONDS) is what
    governs; the kubelet's SIGKILL must come after it, not before (and not minutes after)."""
    worker = chart.named("Deployment", "-worker")
    pod = worker["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    shutdown = float(env["FRACTAL_WORKER_SHUTDOWN_TIMEOUT_SECONDS"]["value"])
    values = helm_python.Chart.load(str(CHART_DIR)).values["worker"]
    assert shutdown == values["shutdownTimeoutSeconds"]
    assert pod["terminationGracePeriodSeconds"] == shutdown + values["shutdownMarginSeconds"]
    assert container["args"] == ["worker"]
    slots = env["FRACTAL_WORKER_ACTIVITY_SLOTS"]
    assert slots["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"


def test_the_worker_shutdown_timeout_value_moves_the_grace_period() -> None:
    pod = render({"worker": {"shutdownTimeoutSeconds": 90.5}}).named("Deployment", "-worker")
    spec = pod["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 91 + 15
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["FRACTAL_WORKER_SHUTDOWN_TIMEOUT_SECONDS"]["value"] == "90.5"
    default = Settings.model_fields["worker_shutdown_timeout_seconds"].default
    assert helm_python.Chart.load(str(CHART_DIR)).values["worker"]["shutdownTimeoutSeconds"] == (
        default
    )


def test_worker_autoscaler() -> None:
    chart = rendered("kind")
    hpa = chart.named("HorizontalPodAutoscaler", "-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": chart.named("Deployment", "-worker")["metadata"]["name"],
    }
    metric = hpa["spec"]["metrics"][0]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # The autoscaler owns the replica count; the Deployment must not fight it.
    assert "replicas" not in chart.named("Deployment", "-worker")["spec"]

    static = rendered("static-workers-no-ingress")
    assert not static.of_kind("HorizontalPodAutoscaler")
    assert static.named("Deployment", "-worker")["spec"]["replicas"] == 3


# --- settings contract ------------------------------------------------------------------


def test_every_fractal_env_var_is_a_settings_field(chart: Rendered) -> None:
    prefix = Settings.model_config["env_prefix"]
    assert prefix == "FRACTAL_"
    fields = set(Settings.model_fields)
    seen = set()
    for where, container, _pod, _init in chart.containers():
        for entry in container.get("env") or []:
            if entry["name"].startswith(prefix):
                field = entry["name"][len(prefix) :].lower()
                assert field in fields, f"{where}: {entry['name']} is not a Settings field"
                seen.add(field)
    app_fields = {
        "database_url",
        "redis_url",
        "temporal_address",
        "temporal_namespace",
        "temporal_task_queue",
        "storage",
        "s3_endpoint",
        "s3_public_endpoint",
        "s3_access_key",
        "s3_secret_key",
        "s3_bucket",
        "s3_secure",
        "jwt_secret",
        "api_host",
        "api_port",
    }
    assert app_fields <= seen


def test_settings_values_are_valid_for_settings(
    chart: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The literal FRACTAL_* values the chart sets parse as Settings (types, ranges), read
    from the environment as the service reads them (lists as JSON)."""
    env = app_env(chart)
    for name, entry in env.items():
        if name.startswith("FRACTAL_") and "value" in entry and "$(" not in entry["value"]:
            monkeypatch.setenv(name, entry["value"])
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.storage == "s3"
    assert settings.api_host == "0.0.0.0"
    assert settings.trusted_proxies == ["10.244.0.0/16"]
    assert settings.worker_memory_bytes == 2 * 1024**3
    assert settings.worker_activity_slots == 2


# --- gateway ----------------------------------------------------------------------------


def test_traefik_routes_api_temporal_ui_and_s3_by_host() -> None:
    chart = rendered("kind")
    routes = {}
    for ingress in chart.of_kind("Ingress"):
        assert ingress["spec"]["ingressClassName"] == "traefik"
        (rule,) = ingress["spec"]["rules"]
        backend = rule["http"]["paths"][0]["backend"]["service"]
        routes[rule["host"]] = (backend["name"], backend["port"]["name"])
    assert routes == {
        "api.localhost": ("fractal-fractal-server-api", "http"),
        "temporal.localhost": ("fractal-fractal-server-temporal", "ui"),
        "s3.localhost": ("fractal-fractal-server-minio", "s3"),
        "jaeger.localhost": ("fractal-fractal-server-jaeger", "ui"),
    }
    # Presigned URLs carry the browser-facing S3 host, with the gateway's host port.
    assert app_env(chart)["FRACTAL_S3_PUBLIC_ENDPOINT"]["value"] == "http://s3.localhost:8080"
    assert not rendered("static-workers-no-ingress").of_kind("Ingress")


def test_notes_print_the_urls() -> None:
    notes = rendered("kind").notes
    for url in (
        "http://api.localhost:8080",
        "http://temporal.localhost:8080",
        "http://s3.localhost:8080",
        "http://jaeger.localhost:8080",
    ):
        assert url in notes
    assert "port-forward" in rendered("static-workers-no-ingress").notes


def test_upgrade_renders_the_same_resources() -> None:
    install = rendered("kind")
    upgrade = render(SCENARIOS["kind"], is_upgrade=True)
    assert sorted(d["metadata"]["name"] for d in upgrade.documents) == sorted(
        d["metadata"]["name"] for d in install.documents
    )


# --- the Temporal Web UI and what the API is told (issue 8) ------------------------------


def test_the_temporal_ui_is_not_routed_by_default() -> None:
    chart = rendered("defaults")
    hosts = {ingress["spec"]["rules"][0]["host"] for ingress in chart.of_kind("Ingress")}
    assert "temporal.localhost" not in hosts
    assert not chart.of_kind("Middleware")
    assert "Temporal Web UI is not routed" in chart.notes
    assert "port-forward svc/fractal-fractal-server-temporal 8233:8233" in chart.notes


def credentials_containers(chart: Rendered) -> dict[str, dict[str, Any]]:
    """The credentials Job's containers by name; none without the Job."""
    return {
        container["name"]: container
        for job in chart.of_kind("Job")
        if job["metadata"]["labels"].get("app.kubernetes.io/component") == "credentials"
        for container in job["spec"]["template"]["spec"]["containers"]
    }


def test_a_routed_temporal_ui_is_behind_basic_authentication() -> None:
    chart = rendered("kind")
    ingress = chart.named("Ingress", "-temporal-ui")
    reference = ingress["metadata"]["annotations"][
        "traefik.ingress.kubernetes.io/router.middlewares"
    ]
    middleware = chart.named("Middleware", "-temporal-ui-auth")
    assert reference == f"{NAMESPACE}-{middleware['metadata']['name']}@kubernetescrd"
    secret_name = middleware["spec"]["basicAuth"]["secret"]
    assert secret_name == "fractal-fractal-server-temporal-ui-auth"
    # Its password is generated once in the cluster by the credentials Job (before any pod,
    # kept on upgrades), never at render time: no render holds it, every render is the same.
    assert not chart.of_kind("Secret")
    container = credentials_containers(chart)["temporal-ui-auth"]
    assert container["args"][:3] == ["ensure-credentials", secret_name, "password:24"]
    assert "--type=kubernetes.io/basic-auth" in container["args"]
    assert "--value=username=admin" in container["args"]
    (rule, _) = chart.component("Role", "credentials")["rules"]
    assert secret_name in rule["resourceNames"] and rule["verbs"] == ["get", "patch"]
    assert render(SCENARIOS["kind"]).templates == chart.templates
    assert f"get secret {secret_name}" in chart.notes


def test_temporal_ui_authentication_options() -> None:
    given = render(
        merge(
            load_kind_values(),
            {"ingress": {"temporalUi": {"basicAuth": {"existingSecret": "ui-users"}}}},
        )
    )
    assert not [s for s in given.of_kind("Secret") if "temporal-ui" in s["metadata"]["name"]]
    assert "temporal-ui-auth" not in credentials_containers(given)
    assert (
        given.named("Middleware", "-temporal-ui-auth")["spec"]["basicAuth"]["secret"] == "ui-users"
    )
    password = render(
        merge(
            load_kind_values(),
            {"ingress": {"temporalUi": {"basicAuth": {"username": "ops", "password": "p4ss"}}}},
        )
    )
    secret = password.named("Secret", "-temporal-ui-given-auth")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(secret["data"]["username"]).decode() == "ops"
    assert base64.b64decode(secret["data"]["password"]).decode() == "p4ss"
    middleware = password.named("Middleware", "-temporal-ui-auth")
    assert middleware["spec"]["basicAuth"]["secret"] == secret["metadata"]["name"]
    assert "temporal-ui-auth" not in credentials_containers(password)
    open_ui = render(
        merge(load_kind_values(), {"ingress": {"temporalUi": {"basicAuth": {"enabled": False}}}})
    )
    assert not open_ui.of_kind("Middleware")
    assert "temporal-ui-auth" not in credentials_containers(open_ui)
    assert "annotations" not in open_ui.named("Ingress", "-temporal-ui")["metadata"]
    assert "WITHOUT authentication" in open_ui.notes
    no_temporal = render(merge(load_kind_values(), EXTERNAL_SERVICES))
    assert not no_temporal.of_kind("Middleware")
    assert "temporal-ui-auth" not in credentials_containers(no_temporal)


@pytest.mark.parametrize(
    ("memory", "cpu", "memory_bytes", "slots"),
    [("2Gi", "2", 2 * 1024**3, 2), ("3072Mi", "1500m", 3 * 1024**3, 2), ("4G", 4, 4 * 10**9, 4)],
)
def test_the_api_is_told_the_workers_memory_and_slots(
    memory: str, cpu: Any, memory_bytes: int, slots: int
) -> None:
    chart = render({"worker": {"resources": {"limits": {"memory": memory, "cpu": cpu}}}})
    env = app_env(chart)
    assert int(env["FRACTAL_WORKER_MEMORY_BYTES"]["value"]) == memory_bytes
    assert int(env["FRACTAL_WORKER_ACTIVITY_SLOTS"]["value"]) == slots
    # The worker's own slot count comes from the same limit (downward API, rounded up).
    worker = app_env(chart, "-worker")["FRACTAL_WORKER_ACTIVITY_SLOTS"]["valueFrom"]
    assert worker["resourceFieldRef"]["resource"] == "limits.cpu"


def test_trusted_proxies_reach_the_api_and_app_settings_win() -> None:
    assert app_env(rendered("defaults"))["FRACTAL_TRUSTED_PROXIES"]["value"] == '["10.244.0.0/16"]'
    none = render({"api": {"trustedProxies": []}})
    assert app_env(none)["FRACTAL_TRUSTED_PROXIES"]["value"] == "[]"
    overridden = render({"app": {"settings": {"worker_memory_bytes": 123456789}}})
    names = [
        entry["name"]
        for entry in overridden.named("Deployment", "-api")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    ]
    assert names.count("FRACTAL_WORKER_MEMORY_BYTES") == 1
    assert app_env(overridden)["FRACTAL_WORKER_MEMORY_BYTES"]["value"] == "123456789"
