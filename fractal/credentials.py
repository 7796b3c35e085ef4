"""Generated credentials that stay the same however the chart is rendered.

The Helm chart used to generate passwords while rendering (``randAlphaNum``) and keep them
with ``lookup``. Where nothing can be looked up (``helm template``, Argo CD), every render
made new ones, and Postgres and MinIO, whose volumes hold the first ones, stopped accepting
the services. Now the chart renders no generated value at all: ``fractal
ensure-credentials`` runs in the cluster before the release's pods (a hook Job) and creates
the Secret's missing keys, once; a key that exists is never changed.

It talks to the Kubernetes API with the pod's service account (a Role allowing exactly
this Secret), over HTTPS with the cluster's CA; values never reach the logs.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
ALPHABET = string.ascii_letters + string.digits  # URL-safe: passwords go into URLs


class KubernetesError(RuntimeError):
    pass


def generate(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@dataclass
class SecretsApi:
    """The Secrets of one namespace, through the Kubernetes REST API."""

    client: httpx.Client
    namespace: str

    @classmethod
    def in_cluster(cls, account: Path = SERVICE_ACCOUNT) -> SecretsApi:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubernetesError("not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is unset)")
        token = (account / "token").read_text().strip()
        host = f"[{host}]" if ":" in host else host
        client = httpx.Client(
            base_url=f"https://{host}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(account / "ca.crt"),
            timeout=10,
        )
        return cls(client, (account / "namespace").read_text().strip())

    def _path(self, name: str = "") -> str:
        base = f"/api/v1/namespaces/{self.namespace}/secrets"
        return f"{base}/{name}" if name else base

    def read(self, name: str) -> dict[str, str] | None:
        """The Secret's data (base64 values) or None when it does not exist."""
        answer = self.client.get(self._path(name))
        if answer.status_code == 404:
            return None
        _raise_for(answer, f"reading Secret {name}")
        return dict(answer.json().get("data") or {})

    def create(
        self,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        secret_type: str = "Opaque",
    ) -> bool:
        """False when another writer created it first (409)."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": dict(labels)},
            "type": secret_type,
            "data": dict(data),
        }
        answer = self.client.post(self._path(), json=body)
        if answer.status_code == 409:
            return False
        _raise_for(answer, f"creating Secret {name}")
        return True

    def add_keys(self, name: str, data: Mapping[str, str]) -> None:
        answer = self.client.patch(
            self._path(name),
            json={"data": dict(data)},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        _raise_for(answer, f"adding keys to Secret {name}")


def _raise_for(answer: httpx.Response, doing: str) -> None:
    if answer.is_success:
        return
    try:
        message = answer.json().get("message", answer.text)
    except ValueError:
        message = answer.text
    raise KubernetesError(f"{doing}: HTTP {answer.status_code}: {message[:300]}")


def ensure_secret(
    api: SecretsApi,
    name: str,
    lengths: Mapping[str, int],
    labels: Mapping[str, str],
    make: Callable[[int], str] = generate,
    *,
    secret_type: str = "Opaque",
    values: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Make sure Secret ``name`` has every key of ``lengths``, generating the missing ones;
    existing keys are kept as they are. ``values``: keys that are not secret (a user name)
    and are set to the value given, on creation and whenever it changed. ``secret_type``:
    the type of a Secret it creates (``kubernetes.io/basic-auth`` for Traefik).

    Returns what happened to each key (``created``, ``kept`` or ``set``), never a value."""
    fixed = {key: _b64(value) for key, value in (values or {}).items()}
    for _ in range(3):  # a concurrent writer makes one of the steps below lose a race
        existing = api.read(name)
        missing = {
            key: _b64(make(length))
            for key, length in lengths.items()
            if existing is None or key not in existing
        }
        changed = {
            key: value
            for key, value in fixed.items()
            if existing is None or existing.get(key) != value
        }
        report = {key: "created" if key in missing else "kept" for key in lengths}
        report.update({key: "set" if key in changed else "kept" for key in fixed})
        if existing is None:
            if api.create(name, {**missing, **changed}, labels, secret_type):
                return report
            continue
        if missing or changed:
            api.add_keys(name, {**missing, **changed})
        return report
    raise KubernetesError(f"Secret {name} kept changing while it was being completed")


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def parse_keys(specs: list[str]) -> dict[str, int]:
    """``["jwt-secret:48", "redis-password:32"]`` -> ``{"jwt-secret": 48, ...}``."""
    lengths = {}
    for spec in specs:
        key, _, length = spec.partition(":")
        if not key or not length.isdigit() or not 16 <= int(length) <= 256:
            raise ValueError(f"{spec!r}: expected KEY:LENGTH with a length of 16 to 256")
        lengths[key] = int(length)
    return lengths


def pairs_from(pairs: list[str]) -> dict[str, str]:
    """``["a=b", "c=d"]`` -> ``{"a": "b", "c": "d"}`` (labels, fixed values)."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r}: expected KEY=VALUE")
        result[key] = value
    return result


def labels_from(pairs: list[str]) -> dict[str, Any]:
    return dict(pairs_from(pairs))
