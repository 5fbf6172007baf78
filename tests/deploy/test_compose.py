"""deploy/compose.yaml (wt-ops): PostgreSQL and two replicas of the bot image for a local trial (docs/ha.md).

There is no Docker engine where the tests run (the image is never built here), so this checks what the file says:
the services, the order of start (the replicas wait for a healthy database), the same image and the same
environment for both replicas (the variables of .env.example), a health check on each service, and no secret
written in the file. `docker compose -f deploy/compose.yaml config` validates the syntax (docs/ha.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
REPLICAS = ("wscheck-a", "wscheck-b")
#: A value that is a secret is never written in the file: it is a required variable (`${NAME:?why}`).
REQUIRED_VAR = re.compile(r"\$\{(?P<name>[A-Z_]+):\?[^}]+\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def example_vars() -> set[str]:
    return {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
            if re.match(r"^[A-Z_]+=", line)}


def test_postgres_and_two_replicas_of_the_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *REPLICAS}
    assert services["postgres"]["image"].startswith("postgres:")
    for name in REPLICAS:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == ROOT / "deploy" / "Dockerfile"
        assert services[name]["init"] is True  # PID 1 forwards SIGTERM and reaps: the graceful stop gives the lease up
        assert services[name]["restart"] in ("unless-stopped", "always", "on-failure")  # a deposed leader exits 75
    ports = [services[name]["ports"] for name in REPLICAS]
    assert ports[0] != ports[1] and all(p[0].startswith("127.0.0.1:") for p in ports), "each /healthz, loopback only"


def test_the_replicas_start_once_the_database_is_healthy_and_have_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    database = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in database
    for name in REPLICAS:
        service = services[name]
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        check = " ".join(service["healthcheck"]["test"])
        port = service["environment"]["WSCHECK_METRICS_PORT"]
        assert f"127.0.0.1:{port}/healthz" in check and service["ports"][0].endswith(f":{port}")


def test_both_replicas_get_the_same_environment_from_env_example(compose: dict[str, Any]) -> None:
    a, b = (compose["services"][name] for name in REPLICAS)
    assert a["env_file"] == b["env_file"] == ["wscheck.env"]  # `cp .env.example deploy/wscheck.env`
    assert a["environment"] == b["environment"] and a["volumes"] == b["volumes"]
    assert a["image"] == b["image"] and a["build"] == b["build"]
    assert set(a["environment"]) <= example_vars(), "every variable set here is one .env.example documents"


def test_the_replicas_share_the_postgres_service_database_with_its_password(compose: dict[str, Any]) -> None:
    env = compose["services"]["wscheck-a"]["environment"]
    pg = compose["services"]["postgres"]["environment"]
    ours = REQUIRED_VAR.findall(env["WSCHECK_DB"])
    theirs = REQUIRED_VAR.fullmatch(pg["POSTGRES_PASSWORD"])
    assert theirs and ours == [theirs["name"]], "one password, from one variable"
    url = urlsplit(REQUIRED_VAR.sub("pw", env["WSCHECK_DB"]))  # what compose makes of it
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert url.username == pg["POSTGRES_USER"] and url.password == "pw" and url.path == "/" + pg["POSTGRES_DB"]


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"xox[abp]-|xapp-", text), "Slack tokens belong in wscheck.env"
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert REQUIRED_VAR.fullmatch(str(value)), f"{name}: {key} is written in the file"
            if key == "WSCHECK_DB":
                password = urlsplit(REQUIRED_VAR.sub("", str(value))).password
                assert not password, f"{name}: a password written in WSCHECK_DB"
            assert not re.search(r"SLACK_(BOT|APP)_TOKEN|SIGNING_SECRET", key), f"{name}: {key} inline"
    # The files that hold them stay out of git.
    for local in ("deploy/wscheck.env", "deploy/.env", "deploy/config/wscheck.toml"):
        ignored = subprocess.run(["git", "check-ignore", "-q", local], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{local} is not ignored by git"


def test_the_image_serves_both_engines() -> None:
    """The image installs requirements/run.lock (test_deploy_artifacts checks the Dockerfile does): asyncpg must be
    in it, and the entrypoint passes a postgresql:// URL through (test_entrypoint_fills_in_...)."""
    lock = (ROOT / "requirements" / "run.lock").read_text()
    assert re.search(r"^asyncpg==\S+ \\$", lock, re.M)
    assert "*://*" in (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
