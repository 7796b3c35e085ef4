"""Commands that run the service: all of it on this machine, or one process of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fractal.cli.app import app, fail


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where all state lives (FRACTAL_DATA_DIR, ./data)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="API port (FRACTAL_API_PORT, 8000)")] = None,
    temporal_port: Annotated[int, typer.Option(help="Embedded Temporal gRPC port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Embedded Temporal Web UI port")] = 8233,
    worker_metrics_port: Annotated[
        int | None,
        typer.Option(help="The worker's /metrics port (FRACTAL_WORKER_METRICS_PORT, 9464; 0: off)"),
    ] = None,
) -> None:
    """Run the whole service on this machine: Temporal, Postgres, Redis, API and a worker."""
    from fractal.cli.up import UpOptions, run_stack
    from fractal.embedded import EmbeddedServerError
    from fractal.settings import Settings

    settings = Settings()
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if port is not None:
        overrides["api_port"] = port
    if worker_metrics_port is not None:
        overrides["worker_metrics_port"] = worker_metrics_port
    settings = settings.model_copy(update=overrides)
    try:
        run_stack(settings, UpOptions(temporal_port, ui_port), _serve_api, echo=typer.echo)
    except EmbeddedServerError as error:
        raise fail(f"error: {error} (logs under {settings.data_dir})") from None


def _serve_api(settings: Any) -> None:
    import uvicorn

    from api.main import create_app
    from api.server import server_config
    from fractal.observability import configure_logging

    configure_logging(settings)
    try:
        application = create_app(settings)
    except RuntimeError as error:
        raise fail(f"error: {error}", 2) from None
    # Header size and timeouts, the connection cap, logging, graceful shutdown
    # (api/server.py).
    uvicorn.Server(server_config(application, settings)).run()


@app.command()
def api() -> None:
    """Serve the REST API (production process; needs FRACTAL_JWT_SECRET and the services)."""
    from fractal.settings import Settings

    _serve_api(Settings())


@app.command()
def worker() -> None:
    """Run a Temporal worker: the render workflow and activities, one slot per core."""
    from activities.worker import main as worker_main

    worker_main()


def _database_url() -> str:
    from fractal.settings import Settings

    url = Settings().database_url
    if not url:
        raise fail("error: FRACTAL_DATABASE_URL is not set", 2)
    return url


@app.command()
def migrate() -> None:
    """Apply the database migrations (FRACTAL_DATABASE_URL)."""
    from fractal.migrate import upgrade_database

    upgrade_database(_database_url())
    typer.echo("database is up to date")


@app.command("wait-for-database")
def wait_for_database(
    schema: Annotated[
        bool, typer.Option(help="Wait until the migrations have run, not only for a connection")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 300,
) -> None:
    """Wait until the database (FRACTAL_DATABASE_URL) answers; exit 1 if it never does."""
    from fractal.migrate import DatabaseNotReady, wait_until_ready

    try:
        wait_until_ready(_database_url(), require_schema=schema, timeout=timeout, echo=typer.echo)
    except DatabaseNotReady as error:
        raise fail(f"gave up waiting {error}") from None


@app.command("ensure-credentials")
def ensure_credentials(
    secret: Annotated[str, typer.Argument(help="Name of the Secret in this pod's namespace")],
    keys: Annotated[
        list[str], typer.Argument(help="KEY:LENGTH of each credential, e.g. jwt-secret:48")
    ],
    label: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE label of a Secret it creates")
    ] = None,
    value: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE of a key that is not secret (a user name): set to this value, "
            "also when the Secret exists"
        ),
    ] = None,
    secret_type: Annotated[
        str,
        typer.Option("--type", help="Type of a Secret it creates, e.g. kubernetes.io/basic-auth"),
    ] = "Opaque",
    service_account: Annotated[
        Path, typer.Option(help="The pod's mounted service account (token, ca.crt, namespace)")
    ] = Path("/var/run/secrets/kubernetes.io/serviceaccount"),
) -> None:
    """Create the Secret's missing keys with random values; never change an existing one.
    Run in the cluster (the Helm chart's credentials Job), with the pod's service account."""
    from fractal.credentials import (
        KubernetesError,
        SecretsApi,
        ensure_secret,
        labels_from,
        pairs_from,
        parse_keys,
    )

    try:
        lengths, labels = parse_keys(keys), labels_from(label or [])
        values = pairs_from(value or [])
    except ValueError as error:
        raise fail(f"error: {error}", 2) from None
    try:
        report = ensure_secret(
            SecretsApi.in_cluster(service_account),
            secret,
            lengths,
            labels,
            secret_type=secret_type,
            values=values,
        )
    except (KubernetesError, OSError) as error:
        raise fail(f"error: {error}") from None
    for key, what in report.items():
        typer.echo(f"{secret}/{key}: {what}")
