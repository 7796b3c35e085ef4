"""Offline rendering of the Helm chart for the deploy tests (no cluster, no helm binary).

helm_python embeds Helm's engine: ``Chart.render`` is ``helm template`` (``lookup`` returns
nothing offline, so every generated credential is fresh), ``helm_python.lint`` is
``helm lint``. Rendered documents are validated against the Kubernetes OpenAPI schemas
that kubernetes-validate ships.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "deploy" / "helm" / "fractal-server"
KIND_DIR = ROOT / "kind"
RELEASE = "fractal"
NAMESPACE = "fractal"

# Kubernetes versions the manifests must be valid for: the oldest the chart supports
# (Chart.yaml kubeVersion), the one current Kind node images run, and the newest schema
# kubernetes-validate ships.
KUBE_VERSIONS = ("1.29.0", "1.34.0", "1.37.0")

# Kinds of custom resources (CRDs of KEDA and the Prometheus Operator) that the Kubernetes
# OpenAPI schemas do not know; tests/test_deploy_operations.py checks their shape.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}

EXTERNAL_SECRET = "fractal-external-credentials"

# Every backing service switched off: the app points at existing Temporal, Postgres, Redis
# and S3, with credentials from an existing Secret.
EXTERNAL_SERVICES: dict[str, Any] = {
    "temporal": {"enabled": False, "address": "temporal-frontend.temporal.svc:7233"},
    "postgresql": {
        "enabled": False,
        "host": "db.example.internal",
        "existingSecret": EXTERNAL_SECRET,
        "existingSecretPasswordKey": "db-password",
        "options": "sslmode=require",
    },
    "redis": {
        "enabled": False,
        "host": "redis.example.internal",
        "tls": True,
        "existingSecret": EXTERNAL_SECRET,
        "existingSecretPasswordKey": "redis-password",
    },
    "minio": {
        "enabled": False,
        "endpoint": "s3.eu-west-1.amazonaws.com",
        "publicEndpoint": "s3.eu-west-1.amazonaws.com",
        "secure": True,
        "region": "eu-west-1",
        "bucket": "fractal-videos",
        "existingSecret": EXTERNAL_SECRET,
    },
    "app": {"jwt": {"existingSecret": EXTERNAL_SECRET}},
}


def load_kind_values() -> dict[str, Any]:
    return yaml.safe_load((KIND_DIR / "values.yaml").read_text())


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def scenarios() -> dict[str, dict[str, Any]]:
    """Value sets every chart test runs against, by name."""
    kind = load_kind_values()
    single_switches = {
        f"external-{service}": {service: EXTERNAL_SERVICES[service]}
        for service in ("temporal", "postgresql", "redis", "minio")
    }
    return {
        "defaults": {},
        "kind": kind,
        **single_switches,
        "external-all": EXTERNAL_SERVICES,
        "external-all-on-kind": merge(kind, EXTERNAL_SERVICES),
        # External services whose credentials are given as values (quick tries): the chart
        # then keeps them in its own Secret.
        "external-values-credentials": {
            "postgresql": {"enabled": False, "host": "db", "password": "db-pass-1"},
            "redis": {"enabled": False, "host": "redis"},
            "minio": {
                "enabled": False,
                "endpoint": "minio:9000",
                "accessKey": "AK1",
                "secretKey": "SK1",
            },
        },
        # Every other knob turned: names, a non-default Temporal namespace, TLS, extra env.
        "customized": {
            "fullnameOverride": "fractal-animation-server",
            "serviceAccount": {"create": False, "name": "renderer"},
            "imagePullSecrets": [{"name": "registry"}],
            "temporal": {"namespace": "fractal", "taskQueue": "renders"},
            "app": {
                "extraEnv": [{"name": "FRACTAL_REDIS_KEY_PREFIX", "value": "fractal-prod"}],
                "settings": {"max_active_tasks": 5, "chunk_seconds": 0.5},
            },
            "ingress": {
                "publicPort": 443,
                "tls": [{"hosts": ["api.example.com"], "secretName": "api-tls"}],
                "hosts": {"api": "api.example.com"},
            },
            "backingServices": {"readOnlyRootFilesystem": False},
        },
        "static-workers-no-ingress": {
            "worker": {"autoscaling": {"enabled": False}, "replicaCount": 3},
            "ingress": {"enabled": False},
        },
        # Everything operations can switch on at once: the Prometheus Operator's monitors,
        # the Grafana dashboard, KEDA instead of the HPA, several API replicas (PDBs),
        # NetworkPolicies, Jaeger, Temporal over mTLS with an API key.
        "operations": merge(
            kind,
            {
                "fullnameOverride": "fractal",
                "api": {"replicaCount": 2},
                "worker": {"autoscaling": {"minReplicas": 2, "keda": {"enabled": True}}},
                "metrics": {
                    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                    "podMonitor": {"enabled": True},
                    "grafanaDashboard": {"enabled": True},
                },
                "networkPolicy": {
                    "temporalClients": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "keda"}
                            }
                        }
                    ]
                },
                "temporal": {
                    "tls": {"enabled": True, "existingSecret": "temporal-client-tls"},
                    "apiKey": {"existingSecret": "temporal-api-key"},
                },
            },
        ),
    }


@dataclass
class Rendered:
    """One render of the chart: manifests by template, parsed documents and NOTES.txt."""

    values: dict[str, Any]
    templates: dict[str, str]
    documents: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    def named(self, kind: str, suffix: str) -> dict[str, Any]:
        matches = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"].endswith(suffix)]
        assert len(matches) == 1, f"expected one {kind} *{suffix}, got {len(matches)}"
        return matches[0]

    def component(self, kind: str, component: str) -> dict[str, Any]:
        """The one resource of ``kind`` labelled with ``component`` (names may carry a hash)."""
        matches = [
            doc
            for doc in self.of_kind(kind)
            if doc["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(matches) == 1, f"expected one {kind} of {component}, got {len(matches)}"
        return matches[0]

    def workloads(self) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] in WORKLOAD_KINDS]

    def containers(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], bool]]:
        """(workload/container, container, pod spec, is_init) for every container."""
        for doc in self.workloads():
            pod = doc["spec"]["template"]["spec"]
            for key, is_init in (("initContainers", True), ("containers", False)):
                for container in pod.get(key) or []:
                    where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
                    yield where, container, pod, is_init


@cache
def _chart() -> Any:
    import helm_python

    return helm_python.Chart.load(str(CHART_DIR))


def render(values: dict[str, Any] | None = None, *, is_upgrade: bool = False) -> Rendered:
    templates = _chart().render(
        values or {},
        name=RELEASE,
        namespace=NAMESPACE,
        is_install=not is_upgrade,
        is_upgrade=is_upgrade,
    )
    rendered = Rendered(values=values or {}, templates=templates)
    for path, text in sorted(templates.items()):
        if path.endswith("NOTES.txt"):
            rendered.notes = text
            continue
        for document in yaml.safe_load_all(text):
            if document:
                rendered.documents.append(document)
    return rendered
