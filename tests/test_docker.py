"""docker/: the compose file and the Dockerfile hold what README.md promises (no Docker engine runs here,
so the files are parsed and checked, not built)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _ports(service: dict) -> set[int]:
    """Container ports of ``HOST:CONTAINER`` mappings."""
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def _host_ports(service: dict) -> set[int]:
    """Host ports of ``[IP:]HOST:CONTAINER`` mappings."""
    return {int(str(p).split(":")[-2]) for p in service.get("ports", [])}


def test_services_images_and_ports(compose):
    services = compose["services"]
    assert set(services) >= {"qdrant", "milvus", "etcd", "minio", "encoder", "app"}
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:v")
    assert services["milvus"]["image"].startswith("milvusdb/milvus:v")
    assert services["etcd"]["image"].startswith("quay.io/coreos/etcd:v")
    assert services["minio"]["image"].startswith("minio/minio:")
    for service in services.values():  # pinned versions, never :latest for the databases
        if "build" not in service:
            assert not service["image"].endswith(":latest"), service["image"]
    assert _host_ports(services["qdrant"]) >= {6333, 6334}
    assert _host_ports(services["milvus"]) >= {19530, 9091}
    assert services["milvus"]["command"] == ["milvus", "run", "standalone"]
    env = services["milvus"]["environment"]
    assert env["ETCD_ENDPOINTS"] == "etcd:2379" and env["MINIO_ADDRESS"] == "minio:9000"
    assert "etcd" in services["etcd"]["command"] and "http://0.0.0.0:2379" in services["etcd"]["command"]
    assert "minio server" in services["minio"]["command"]


def test_every_database_has_a_health_check_and_a_volume(compose):
    services = compose["services"]
    declared = set(compose["volumes"])
    for name in ("qdrant", "milvus", "etcd", "minio"):
        check = services[name]["healthcheck"]
        assert check["test"] and check["interval"] and check["retries"] >= 3, name
        mounts = [v.split(":")[0] for v in services[name]["volumes"]]
        assert any(m in declared for m in mounts), name  # data survives container restarts
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    assert "localhost:9091/healthz" in " ".join(services["milvus"]["healthcheck"]["test"])
    assert services["qdrant"]["volumes"][0].endswith(":/qdrant/storage")
    assert services["milvus"]["volumes"][0].endswith(":/var/lib/milvus")
    for name, service in services.items():  # every named volume used is declared
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, (name, source)
    deps = services["milvus"]["depends_on"]
    assert deps["etcd"]["condition"] == deps["minio"]["condition"] == "service_healthy"


def _gpu_devices(service: dict) -> list[dict]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_encoder_service(compose):
    encoder = compose["services"]["encoder"]
    build = encoder["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == (DOCKER / "Dockerfile").resolve()
    command = encoder["command"]
    assert command[0] == "serve" and command[command.index("--port") + 1] == "8080"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # inside its container, for the app's network
    assert encoder["ports"] == ["127.0.0.1:8080:8080"]  # ... and on the host, loopback only
    env = encoder["environment"]
    assert env["HF_TOKEN"] == "${HF_TOKEN:-}" and env["M3_ENCODER_API_KEY"] == "${M3_ENCODER_API_KEY:-}"
    assert env["HF_HOME"] == "/root/.cache/huggingface"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in encoder["volumes"]}
    assert mounts["/root/.cache/huggingface"] in compose["volumes"]  # the model is downloaded once
    check = encoder["healthcheck"]
    assert "http://127.0.0.1:8080/health" in " ".join(check["test"]) and check["retries"] >= 3
    assert int(check["start_period"].rstrip("s")) >= 300  # the first start downloads ~2.3 GB
    devices = _gpu_devices(encoder)
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert int(encoder["stop_grace_period"].rstrip("s")) > 30  # longer than the service's drain timeout


def test_app_service(compose):
    app = compose["services"]["app"]
    build = app["build"]
    dockerfile = (DOCKER / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == (DOCKER / "Dockerfile").resolve() and dockerfile.is_file()
    assert (DOCKER / build["context"]).resolve() == ROOT
    assert app["image"] == compose["services"]["encoder"]["image"]  # one image, two roles
    command = app["command"]
    assert command[0] == "index" and "--url" in command
    assert command[command.index("--url") + 1] == "http://qdrant:6333"  # the service name, inside the network
    assert {d: c["condition"] for d, c in app["depends_on"].items()} == {
        "encoder": "service_healthy", "qdrant": "service_healthy", "milvus": "service_healthy"}
    # the app encodes through the service by URL: no GPU, no model cache of its own
    env = app["environment"]
    encoder_port = int(compose["services"]["encoder"]["command"][-1])
    assert env["M3_ENCODER_URL"] == f"http://encoder:{encoder_port}"
    assert env["M3_ENCODER_API_KEY"] == compose["services"]["encoder"]["environment"]["M3_ENCODER_API_KEY"]
    assert not _gpu_devices(app)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"]}
    assert mounts["/data"] == "../examples/data" and (DOCKER / "../examples/data").resolve().is_dir()
    assert "/work/.m3" in mounts and "/root/.cache/huggingface" not in mounts  # index config persists


def test_dockerfile(compose):
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime", base)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    install = re.search(r"^RUN pip install \"\.\[([a-z,-]+)\]\"", text, re.M)
    assert install and {"qdrant", "milvus", "eval", "serve", "remote"} <= set(install.group(1).split(","))
    assert 'ENTRYPOINT ["m3"]' in text
    # it serves by default, says when it is healthy, and drains on SIGTERM
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert cmd[:1] == ["serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "8080"
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    health = re.search(r"^HEALTHCHECK ([^\n]*)\n\s*CMD (\[[^\n]*\])$", text, re.M)
    assert health and "--start-period=" in health.group(1)
    assert "http://127.0.0.1:8080/health" in " ".join(json.loads(health.group(2)))
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert '"/root/.cache/huggingface"' in re.search(r"^VOLUME (.*)$", text, re.M).group(1)
    assert "COPY m3_integrations ./m3_integrations" in text and "COPY pyproject.toml README.md ./" in text
    assert re.search(r"^WORKDIR /work$", text, re.M)  # so ./.m3 is the /work/.m3 volume of the compose file
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ignore.index("*") < min(ignore.index(k) for k in ("!pyproject.toml", "!README.md", "!m3_integrations/"))


def test_readme_matches_the_files(compose, readme):
    services = compose["services"]
    for port in (6333, 6334, 19530, 9091):
        assert str(port) in readme
    assert "docker/Dockerfile" in readme and "docker/compose.yaml" in readme
    lines = re.findall(r"^docker compose .*$", readme, re.M)
    assert lines
    for line in lines:
        words = line.split("-f docker/compose.yaml", 1)[1].split()
        if words[0] == "up":
            named = [w for w in words[1:] if not w.startswith("-")]
        else:
            assert words[:2] == ["run", "--rm"], line
            named = [words[2]]
            assert words[3] in ("index", "search", "eval", "info"), line
        assert named and set(named) <= set(services), line
    # the URLs the README uses inside the compose network are the service names and ports
    for url in re.findall(r"--url (http://[\w.-]+:\d+)", readme):
        host, port = url[len("http://"):].split(":")
        if host != "localhost" and host != "host":
            assert host in services and int(port) in _ports(services[host]), url


def test_readme_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] in text  # the same test command
    assert re.search(r'pip install torch==2\.13\.0 && pip install "\.\[all\]" && m3 index examples/data && m3 search',
                     text)
    for section in ("## The encoder", "## Qdrant", "## Milvus", "## LangChain", "## LlamaIndex", "## Command line",
                    "## Docker", "## Benchmarks", "build_tiny_model"):
        assert section in text
    for path in re.findall(r"\]\(((?:examples|docs|docker|bench)/[^)#]*)\)", text):
        if path != "docs/benchmarks.md":  # written by the benchmark owner
            assert (ROOT / path).exists(), path
