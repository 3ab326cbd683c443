"""Static checks of the container files (no Docker engine needed): docker-compose.yml
names only services that exist, wires Kindling to its PostgreSQL, and every path it
and the Dockerfile refer to exists in the repository."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from control.store.database import to_asyncpg_url

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
PORT = 8080


# --------------------------------------------------------------------------- parsing helpers


def load_compose() -> dict:
    with open(COMPOSE, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out: dict[str, str | None] = {}
        for item in env:
            key, sep, value = str(item).partition("=")
            out[key] = value if sep else None
        return out
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def build_spec(service: dict) -> tuple[Path, Path] | None:
    """(context dir, Dockerfile) of a service's ``build``, or None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    ctx = (COMPOSE.parent / context).resolve()
    return ctx, (ctx / dockerfile).resolve()


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def exec_or_shell(args: str) -> list[str]:
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value
    return ["/bin/sh", "-c", args]


def copy_sources(args: str) -> list[str] | None:
    """Sources of a COPY/ADD taken from the build context (None for ``--from=`` copies)."""
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    if any(f.startswith("--from=") for f in flags):
        return None
    paths = [w for w in words if not w.startswith("--")]
    assert len(paths) >= 2, f"COPY needs a source and a destination: {args}"
    return paths[:-1]


def dockerignore_patterns(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    """Close enough to Docker's matcher for plain paths (last matching pattern wins)."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        candidates = {pat, pat.removeprefix("**/")}
        if any(fnmatch.fnmatch(rel, c) or rel.startswith(c + "/") for c in candidates):
            result = not negate
    return result


# --------------------------------------------------------------------------- docker-compose.yml


def test_compose_has_only_the_services_that_exist():
    services = load_compose()["services"]
    assert set(services) == {"postgres", "kindling"}


def test_build_contexts_and_dockerfiles_exist():
    services = load_compose()["services"]
    built = {name: build_spec(svc) for name, svc in services.items() if build_spec(svc) is not None}
    assert set(built) == {"kindling"}
    for name, (context, dockerfile) in built.items():
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert context == REPO or REPO in context.parents, f"{name}: build context outside the repository"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
    for name, svc in services.items():
        if "build" not in svc:
            assert svc.get("image"), f"{name}: neither build nor image"


def test_relative_paths_exist():
    doc = load_compose()
    declared_volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in doc["services"].items():
        env_files = svc.get("env_file") or []
        if isinstance(env_files, (str, dict)):
            env_files = [env_files]
        for entry in env_files:
            path, required = (entry, True) if isinstance(entry, str) else (entry["path"], entry.get("required", True))
            if required and not Path(path).is_absolute():
                assert (COMPOSE.parent / path).exists(), f"{name}: env_file {path} missing"
        for volume in svc.get("volumes") or []:
            if isinstance(volume, str):
                parts = volume.split(":")
                if len(parts) == 1:
                    continue  # anonymous volume
                source, kind = parts[0], "bind" if parts[0].startswith((".", "/", "~")) else "volume"
            else:
                source, kind = volume.get("source"), volume.get("type", "volume")
            if kind == "bind":
                if not Path(source).is_absolute() and not source.startswith("~"):
                    assert (COMPOSE.parent / source).exists(), f"{name}: bind source {source} missing"
            elif kind == "volume" and source:
                assert source in declared_volumes, f"{name}: volume {source} is not declared at top level"


def test_kindling_talks_to_the_postgres_service():
    services = load_compose()["services"]
    pg_env = environment(services["postgres"])
    env = environment(services["kindling"])

    raw = env["KINDLING_DATABASE_URL"]
    assert raw and "$" not in raw
    url = make_url(to_asyncpg_url(raw))
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "postgres" and url.host in services
    assert url.port in (None, 5432)
    assert url.username == pg_env.get("POSTGRES_USER", "postgres")
    assert url.password == pg_env["POSTGRES_PASSWORD"]
    assert url.database == pg_env.get("POSTGRES_DB", url.username)

    depends = services["kindling"]["depends_on"]
    assert isinstance(depends, dict), "depends_on must wait for postgres to be healthy, not merely started"
    assert depends["postgres"]["condition"] == "service_healthy"
    test = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))

    image = services["postgres"]["image"]
    assert image.startswith("postgres:") and not image.endswith(":latest")
    mounts = [v for v in services["postgres"].get("volumes") or [] if isinstance(v, str)]
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" for v in mounts), "PostgreSQL data is not on a volume"


def test_kindling_secrets_come_from_the_environment():
    env = environment(load_compose()["services"]["kindling"])
    assert re.fullmatch(r"\$\{KINDLING_MASTER_KEY:\?[^}]+\}", env["KINDLING_MASTER_KEY"] or ""), (
        "KINDLING_MASTER_KEY must be required from the environment, never written in the file"
    )
    for name in ("KINDLING_ACCESS_KEY", "KINDLING_SECRET_KEY", "KINDLING_PROJECT_ID"):
        value = env.get(name, "")
        assert value is None or re.fullmatch(rf"\$\{{{name}(:?-[^}}]*)?\}}", value), f"{name} must come from env"


def test_every_kindling_variable_is_one_the_server_reads():
    config = (REPO / "control" / "config.py").read_text(encoding="utf-8")
    for name in environment(load_compose()["services"]["kindling"]):
        if name.startswith("KINDLING_"):
            assert f'"{name}"' in config, f"{name} is not read by control/config.py"


def test_interpolations_are_well_formed():
    ok = re.compile(r"\$(\$|\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)")

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(k)
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
        elif isinstance(node, str):
            yield node

    for text in walk(load_compose()):
        stripped = ok.sub("", text)
        assert "$" not in stripped, f"malformed interpolation in {text!r}"


def test_ports_match_the_image():
    services = load_compose()["services"]
    ports = [str(p) for p in services["kindling"]["ports"]]
    assert any(p.split(":")[-1].split("/")[0] == str(PORT) for p in ports)
    assert "ports" not in services["postgres"], "PostgreSQL should not be published outside the compose network"


# --------------------------------------------------------------------------- Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> tuple[Path, list[tuple[str, str]]]:
    spec = build_spec(load_compose()["services"]["kindling"])
    assert spec is not None
    context, path = spec
    return context, dockerfile_instructions(path)


def test_dockerfile_base_user_and_port(dockerfile):
    _, ins = dockerfile
    froms = [args for word, args in ins if word == "FROM"]
    assert froms and froms[-1].split()[0].startswith("python:3.11-slim")
    users = [args.split(":")[0] for word, args in ins if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    exposed = [p.split("/")[0] for word, args in ins if word == "EXPOSE" for p in args.split()]
    assert str(PORT) in exposed


def test_dockerfile_runs_kindling_serve(dockerfile):
    _, ins = dockerfile
    entry = [exec_or_shell(a) for w, a in ins if w == "ENTRYPOINT"]
    cmd = [exec_or_shell(a) for w, a in ins if w == "CMD"]
    argv = (entry[-1] if entry else []) + (cmd[-1] if cmd else [])
    assert argv, "no ENTRYPOINT/CMD"
    assert argv[:2] == ["kindling", "serve"], argv
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert flags.get("--host") == "0.0.0.0"
    assert flags.get("--port") == str(PORT)
    assert flags.get("--data-dir")


def test_dockerfile_copies_exist_and_cover_the_package(dockerfile):
    context, ins = dockerfile
    patterns = dockerignore_patterns(context)
    sources: list[str] = []
    for word, args in ins:
        if word in ("COPY", "ADD"):
            srcs = copy_sources(args)
            if srcs is None:
                continue
            for src in srcs:
                rel = src.lstrip("./") if src not in (".", "./") else "."
                assert (context / src).exists(), f"COPY source {src} missing from the build context"
                assert rel == "." or not ignored(rel, patterns), f"COPY source {src} is excluded by .dockerignore"
                sources.append(rel)
    assert any(w == "RUN" and "pip install" in a for w, a in ins), "the project is never installed"

    def copied(rel: str) -> bool:
        return "." in sources or any(rel == s or rel.startswith(s + "/") for s in sources)

    # `pip install .` needs pyproject.toml, its readme and every package setuptools will find.
    project = tomllib.loads((context / "pyproject.toml").read_text(encoding="utf-8"))
    needed = ["pyproject.toml", project["project"]["readme"]]
    find = project["tool"]["setuptools"]["packages"]["find"]
    namespaces = find.get("namespaces", True)  # pyproject.toml's default: find_namespace_packages
    for where in find.get("where", ["."]):
        for top in sorted((context / where).iterdir()):
            if not top.is_dir() or not top.name.isidentifier():
                continue
            if not any(fnmatch.fnmatch(top.name, pat) for pat in find.get("include", ["*"])):
                continue
            if (top / "__init__.py").exists() or (namespaces and any(top.rglob("*.py"))):
                needed.append(top.relative_to(context).as_posix())
    assert "control" in needed and "sdk/python/kindling_sdk" in needed
    for rel in needed:
        assert copied(rel), f"{rel} is needed by `pip install .` but never copied into the image"


def test_dockerignore_keeps_state_and_caches_out(dockerfile):
    context, _ = dockerfile
    patterns = dockerignore_patterns(context)
    for rel in (".git", ".kindling", "control/__pycache__", ".pytest_cache", ".ruff_cache"):
        assert ignored(rel, patterns), f"{rel} is sent to the Docker build context"
    for rel in ("pyproject.toml", "README.md", "control/cli.py", "migrations/alembic.ini"):
        assert not ignored(rel, patterns), f"{rel} is excluded from the Docker build context"
