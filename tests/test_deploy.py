"""The deployment files: the Dockerfile passes hadolint, the compose file validates against the Compose
Specification's JSON schema, the env file names every setting, the image gets every file the package needs, and
the exact commands the containers run (entrypoint + command + health checks) work outside a container, against a
real PostgreSQL and a real Chroma server. No container is built or started here: this machine has no daemon."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx2
import pytest
import yaml
from service_support import SAMPLES, free_port
from soctriage.service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
ENV_FILE = ROOT / "deploy" / "soctriage.env"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A linter the test extra installs beside this interpreter; missing means a broken install, not a skip."""
    path = BIN / name
    assert path.exists(), f"{path} is missing: install the test extra (pip install -e '.[test]')"
    return str(path)


def dockerfile_json(instruction: str) -> list[str]:
    """The exec-form (JSON array) argument of the last `instruction` of the runtime stage."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = re.findall(rf"^{instruction}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.M)
    assert found, f"no exec-form {instruction} in {DOCKERFILE}"
    return json.loads(found[-1])


def env_file() -> dict[str, str]:
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_matches_the_compose_specification_schema() -> None:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"api", "worker", "postgres", "chroma"}
    assert all(ENV_FILE.name in s["env_file"] for s in services.values() if "env_file" in s)


def test_the_env_file_names_every_setting_exactly_once() -> None:
    names = []
    for field_name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        names.append(choices[0] if choices else f"SOCTRIAGE_{field_name.upper()}")
    text = ENV_FILE.read_text()
    for name in names:
        assert len(re.findall(rf"^(?:# )?{name}=", text, re.M)) == 1, name
    written = set(re.findall(r"^(?:# )?(SOCTRIAGE_[A-Z0-9_]+)=", text, re.M))
    assert written == set(names), written ^ set(names)
    Settings(**{k.removeprefix("SOCTRIAGE_").lower(): v for k, v in env_file().items() if k in names})


def test_the_image_gets_every_file_the_package_needs() -> None:
    """The image installs from the copied folders, not in editable mode: every folder of the package must be
    copied (and let through .dockerignore), and every data file in it must be declared package data."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    folders = set(setuptools["package-dir"].values())
    copied = set(re.findall(r"^COPY (\S+) \1$", DOCKERFILE.read_text(), re.M))
    assert copied == folders
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert all(f"!{folder}/" in ignore for folder in folders)
    tracked = subprocess.run(
        ["git", "ls-files", *sorted(folders)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    declared = set()
    for package, patterns in setuptools["package-data"].items():
        base = ROOT / _package_path(setuptools["package-dir"], package)
        declared |= {p.relative_to(ROOT).as_posix() for pattern in patterns for p in base.glob(pattern)}
    data = {f for f in tracked if not f.endswith(".py")}
    assert data <= declared, sorted(data - declared)


def _package_path(package_dir: dict[str, str], package: str) -> str:
    """`soctriage.service` -> `service`; `soctriage.service.store` -> `service/store`."""
    root = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len)
    return "/".join([package_dir[root], *package[len(root) + 1 :].split(".")]).rstrip("/")


@pytest.mark.postgres
def test_the_container_commands_run_outside_a_container(
    pg_url: str, chroma_server: str, tmp_path: Path
) -> None:
    """`docker compose up`, minus docker: the api and worker commands from compose.yaml under the image's
    ENTRYPOINT, with the env file's settings, then the image's and the worker's health checks. Only the database
    and Chroma URLs (the test's own servers), the home folder and the ports (free ones) are changed."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    entrypoint = dockerfile_json("ENTRYPOINT")
    assert entrypoint == ["soctriage"]
    api_port, metrics_port = free_port(), free_port()
    ports = {"8000": str(api_port), "9100": str(metrics_port)}

    def local(argv: list[str]) -> list[str]:
        """The container's argv on this machine: its `soctriage`/`python` are this venv's; ports are free ones."""
        out = []
        for arg in argv:
            for old, new in ports.items():
                arg = arg.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
            out.append(ports.get(arg, arg) if out and out[-1] in ("--port", "--metrics-port") else arg)
        head = {"soctriage": str(BIN / "soctriage"), "python": sys.executable}
        return [head.get(out[0], out[0]), *out[1:]]

    env = {
        "PATH": str(BIN) + ":/usr/bin:/bin",
        **env_file(),
        "SOCTRIAGE_DATABASE_URL": pg_url,
        "SOCTRIAGE_CHROMA_URL": chroma_server,
        "SOCTRIAGE_HOME": str(tmp_path / "home"),
    }
    key = subprocess.run(
        local([*entrypoint, "keys", "create", "--tenant", "acme", "--role", "admin"]),
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()  # fmt: skip
    api_log, worker_log = (tmp_path / "api.log").open("wb"), (tmp_path / "worker.log").open("wb")
    api = subprocess.Popen(
        local([*entrypoint, *services["api"]["command"]]), env=env, stdout=api_log, stderr=api_log
    )
    worker = subprocess.Popen(
        local([*entrypoint, *services["worker"]["command"]]), env=env, stdout=worker_log, stderr=worker_log
    )
    try:
        image_check = local(dockerfile_json("HEALTHCHECK"))
        worker_check = local(services["worker"]["healthcheck"]["test"][1:])  # after "CMD"
        assert _eventually(image_check, api, 120), (tmp_path / "api.log").read_text()[-2000:]
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{api_port}"
        sample = (SAMPLES / "crowdstrike-lsass-dump.json").read_bytes()
        accepted = httpx2.post(f"{base}/v1/alerts", content=sample, headers=headers, timeout=30)
        assert accepted.status_code == 202, accepted.text
        case_id = accepted.json()["accepted"][0]["case_id"]
        deadline, status = time.monotonic() + 180, "new"
        while status in ("new", "triaging") and time.monotonic() < deadline:
            time.sleep(0.5)
            status = httpx2.get(f"{base}/v1/cases/{case_id}", headers=headers, timeout=30).json()["case"][
                "status"
            ]
        assert status == "awaiting_approval", (status, (tmp_path / "worker.log").read_text()[-2000:])
        assert _eventually(worker_check, worker, 60), (tmp_path / "worker.log").read_text()[-2000:]
    finally:
        for proc in (api, worker):
            proc.terminate()
        for proc in (api, worker):
            proc.wait(timeout=60)
        api_log.close()
        worker_log.close()
    # Both stop cleanly on the SIGTERM `docker stop` sends; uvicorn re-raises it after its graceful shutdown.
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]
    assert api.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in (tmp_path / "api.log").read_text()


def _eventually(check: list[str], server: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Run a health-check command until it exits 0, as the container runtime would; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"{server.args} exited with {server.returncode}"
        if subprocess.run(check, capture_output=True, timeout=30, check=False).returncode == 0:
            return True
        time.sleep(0.5)
    return False
