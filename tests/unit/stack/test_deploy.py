"""The docker-compose stack (docker-compose.yml, docker/): validated by docker-compose itself.

There is no Docker engine on these machines, so nothing is started; ``docker-compose config``
(Compose 1.29, installed by ``make test`` through docker/ensure-compose.sh) parses the file,
checks it against the Compose specification and resolves variables, and the checks below read
its resolved output.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
TRITON_REQUIREMENTS = ROOT / "docker" / "triton" / "requirements.txt"
CONSTRAINTS = ROOT / "docker" / "stagelog" / "constraints.txt"
FIRST_PARTY = (
    "logging_backend", "adapters", "riskpipe", "training", "clients", "loadtest", "bench"
)


@pytest.fixture(scope="module")
def compose_bin():
    if shutil.which("docker-compose") is None:
        subprocess.run(["bash", str(ROOT / "docker" / "ensure-compose.sh")], check=True)
    found = shutil.which("docker-compose")
    assert found, "docker-compose is missing: run `make test` (docker/ensure-compose.sh)"
    return found


def compose_config(compose_bin, env_file: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [compose_bin, "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "load",
         "--profile", "tools", "config", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},  # nothing from the caller's environment
    )


@pytest.fixture(scope="module")
def config(compose_bin):
    result = compose_config(compose_bin, ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_file_validates_with_every_service(config):
    assert set(config["services"]) == {
        "clickhouse", "migrate", "triton", "collector", "grafana", "locust", "cli"}
    assert config["services"]["locust"]["profiles"] == ["load"]
    assert config["services"]["cli"]["profiles"] == ["tools"]


def test_every_image_is_pinned_or_built_here(config):
    for name, service in config["services"].items():
        image = service["image"]
        if image.startswith("stagelog"):  # ours: built from docker/, never pulled
            assert (ROOT / service["build"]["dockerfile"]).is_file(), name
        else:
            assert re.search(r":v?\d+\.\d+\.\d+", image), (name, image)


def test_compose_refuses_to_render_without_the_passwords(compose_bin, tmp_path):
    env = tmp_path / "empty.env"
    env.write_text("")
    result = compose_config(compose_bin, env)
    assert result.returncode != 0
    assert "PASSWORD in .env" in result.stderr


def test_compose_rejects_an_invalid_file(compose_bin, tmp_path):
    # The validator is real: a misspelt option fails (guards against a check that cannot fail).
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("shm_size:", "shm_sise:", 1))
    result = subprocess.run(
        [compose_bin, "--env-file", str(ENV_EXAMPLE), "-f", str(broken), "config", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "shm_sise" in result.stderr


def test_clickhouse_is_pinned_persistent_healthy_and_password_from_env(config):
    ch = config["services"]["clickhouse"]
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d+\.\d+\.\d+\.\d+", ch["image"])
    assert "clickhouse-data:/var/lib/clickhouse:rw" in ch["volumes"]
    assert "SELECT 1" in " ".join(ch["healthcheck"]["test"])
    assert env_of(ch)["CLICKHOUSE_PASSWORD"] == "change-me-clickhouse"  # from .env.example


def test_every_password_in_the_compose_file_is_a_required_variable():
    raw = yaml.safe_load(COMPOSE.read_text())
    checked = 0
    for name, service in raw["services"].items():
        for key, value in env_of(service).items():
            if "PASSWORD" in key or "DSN" in key:
                assert re.search(r"\$\{[A-Z_]*PASSWORD:\?[^}]+\}", value), (name, key, value)
                checked += 1
    assert checked >= 4


def test_triton_gets_gpus_shm_models_readiness_and_env(config):
    triton = config["services"]["triton"]
    dockerfile = ROOT / triton["build"]["dockerfile"]
    assert "FROM nvcr.io/nvidia/tritonserver:24.10-py3" in dockerfile.read_text()
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert triton["shm_size"]
    assert any(str(v).endswith(":/models:ro") for v in triton["volumes"])
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert triton["command"][0] == "stagelog-serve"  # docker/triton/serve.sh
    assert "COPY docker/triton/serve.sh /usr/local/bin/stagelog-serve" in dockerfile.read_text()
    env = env_of(triton)
    assert env["STAGELOG_DEVICE"] == "gpu"
    assert env["STAGELOG_HOME"] == "/var/lib/stagelog"
    for port in triton["ports"]:
        assert str(port).startswith("127.0.0.1:") or port.get("host_ip") == "127.0.0.1"


def test_collector_shares_the_spool_and_ships_to_the_server(config):
    services = config["services"]
    collector, triton = services["collector"], services["triton"]
    assert collector["command"] == ["python", "-m", "logging_backend.stack.collector_process"]
    spool = [v for v in triton["volumes"] if str(v).startswith("stagelog-spool:")]
    assert spool and spool[0] in collector["volumes"]
    env = env_of(collector)
    assert env["STAGELOG_HOME"] == env_of(triton)["STAGELOG_HOME"]
    assert env["STAGELOG_DSN"] == "http://stagelog:change-me-clickhouse@clickhouse:8123"
    assert collector["hostname"] == triton["hostname"]  # same `host` on events and samples


def test_migrations_run_once_before_anything_serves(config):
    services = config["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["stagelog", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    for name in ("triton", "collector", "grafana"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"), name
    assert services["locust"]["depends_on"]["triton"]["condition"] == "service_healthy"


def test_grafana_has_the_pinned_plugin_and_provisioning(config):
    grafana = config["services"]["grafana"]
    dockerfile = (ROOT / grafana["build"]["dockerfile"]).read_text()
    assert re.search(r"^FROM grafana/grafana:\d+\.\d+\.\d+$", dockerfile, re.M)
    assert re.search(r"plugins install grafana-clickhouse-datasource \d+\.\d+\.\d+", dockerfile)
    provisioning = ROOT / "docker" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "clickhouse.yaml").read_text())
    ds = datasource["datasources"][0]
    assert ds["type"] == "grafana-clickhouse-datasource"
    assert ds["secureJsonData"]["password"] == "$GRAFANA_CLICKHOUSE_PASSWORD"
    assert env_of(grafana)["GRAFANA_CLICKHOUSE_PASSWORD"] == "change-me-grafana-reader"


def test_dockerfiles_pin_their_bases_and_packages():
    for dockerfile in sorted((ROOT / "docker").glob("*/Dockerfile")):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM "):
                image = line.split()[1]
                assert ":" in image and not image.endswith(":latest"), (dockerfile, line)
                assert re.search(r":v?\d+\.\d+", image), (dockerfile, line)
    for requirements in (TRITON_REQUIREMENTS, CONSTRAINTS):
        pins = [ln for ln in requirements.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
        assert pins
        for pin in pins:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^ ]*", pin), (requirements.name, pin)


def test_secrets_stay_out_of_the_repository():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if re.match(r"^[A-Z_]*PASSWORD=", line):
            assert line.split("=", 1)[1].startswith("change-me"), line


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for spec in project["dependencies"] + project["optional-dependencies"]["load"]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^ ;]+)", spec.strip())
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


def test_image_constraints_agree_with_pyproject():
    constraints = dict(
        ln.split("==") for ln in CONSTRAINTS.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    )
    for name, version in pyproject_pins().items():
        assert constraints.get(name) == version, (
            f"{name}: pyproject pins {version}, docker/stagelog/constraints.txt has "
            f"{constraints.get(name)}; update the constraints")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (ROOT.joinpath(*parts).with_suffix(".py"),
                      ROOT.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


def stage_third_party_imports() -> set[str]:
    """Top-level third-party modules reachable from the model repository's model.py files."""
    todo = list(ROOT.glob("model_repository/*/*/model.py"))
    assert todo, "no model.py in model_repository"
    seen: set[Path] = set()
    third_party: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # the package __init__ files run too
                    found = _module_file(".".join(parts[:i]))
                    if found:
                        todo.append(found)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    return third_party


def test_triton_image_has_every_package_the_stages_import():
    # Triton's own module, provided by the Python backend inside the image.
    needed = stage_third_party_imports() - {"triton_python_backend_utils"}
    assert "numpy" in needed  # the walk really reaches the stage code
    listed = {ln.split("==")[0].lower() for ln in TRITON_REQUIREMENTS.read_text().splitlines()
              if ln.strip() and not ln.startswith("#")}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(needed):
        dists = {d.lower() for d in distributions.get(module, [])}
        if module == "cupy":
            dists = {"cupy-cuda12x"}  # not installed on CPU machines
        if not dists & listed:
            missing.append(f"{module} (distribution {sorted(dists) or '?'})")
    assert not missing, f"add to docker/triton/requirements.txt: {missing}"


def test_load_balancer_example_validates_and_balances_grpc(compose_bin):
    lb = ROOT / "docker" / "lb"
    result = subprocess.run([compose_bin, "-f", str(lb / "docker-compose.yml"), "config"],
                            cwd=lb, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    service = yaml.safe_load(result.stdout)["services"]["envoy"]
    assert re.fullmatch(r"envoyproxy/envoy:v\d+\.\d+\.\d+", service["image"])
    envoy = yaml.safe_load((lb / "envoy.yaml").read_text())
    listener = envoy["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 8001
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["codec_type"] == "HTTP2"
    route = manager["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    upstream = envoy["static_resources"]["clusters"][0]
    assert route["cluster"] == upstream["name"]
    options = upstream["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]  # gRPC upstream
    assert upstream["health_checks"][0]["http_health_check"]["path"] == "/v2/health/ready"
    endpoints = upstream["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert len(endpoints) >= 2
    for endpoint in endpoints:
        assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == 8001
        assert endpoint["endpoint"]["health_check_config"]["port_value"] == 8000


def test_an_extra_gpu_host_can_point_at_a_shared_clickhouse(compose_bin, tmp_path):
    env = tmp_path / "worker.env"
    env.write_text(ENV_EXAMPLE.read_text() + "\nCLICKHOUSE_HOST=ch-lb.internal\n"
                   "STAGELOG_NODE_NAME=gpu-host-2\nSTAGELOG_BIND=0.0.0.0\n")
    result = compose_config(compose_bin, env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert env_of(services["collector"])["STAGELOG_DSN"].endswith("@ch-lb.internal:8123")
    assert services["triton"]["hostname"] == "gpu-host-2"
    assert "0.0.0.0:8001:8001/tcp" in services["triton"]["ports"]


def run_serve(tmp_path, **env):
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "tritonserver").write_text('#!/bin/sh\necho "tritonserver $*"\n')
    (fake / "tritonserver").chmod(0o755)
    result = subprocess.run(
        ["sh", str(ROOT / "docker" / "triton" / "serve.sh"), "--exit-on-error=true"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={"PATH": f"{fake}:/usr/bin:/bin", "PYTHON": sys.executable,
             "STAGELOG_MODEL_REPOSITORY": str(ROOT / "model_repository"),
             "STAGELOG_GPU_REPOSITORY_DIR": str(tmp_path / "gpu_repo"), **env},
    )
    assert result.returncode == 0, result.stderr
    return result


def test_triton_entry_serves_members_on_the_visible_gpus(tmp_path):
    result = run_serve(tmp_path, STAGELOG_DEVICE="gpu", STAGELOG_TRITON_GPUS="0,1")
    repo = tmp_path / "gpu_repo"
    assert result.stdout.strip() == (
        f"tritonserver --model-repository={repo} --exit-on-error=true")
    for member in ("mlp", "forest", "logreg"):
        config = (repo / member / "config.pbtxt").read_text()
        assert "kind: KIND_GPU" in config and "gpus: [ 0, 1 ]" in config, member
    assert "KIND_GPU" not in (repo / "preprocess" / "config.pbtxt").read_text()


def test_triton_entry_serves_the_committed_repository_without_a_gpu(tmp_path):
    # No STAGELOG_TRITON_GPUS and CuPy sees no device here: CPU members, said on stderr.
    result = run_serve(tmp_path, STAGELOG_DEVICE="gpu")
    assert result.stdout.strip() == (
        f"tritonserver --model-repository={ROOT / 'model_repository'} --exit-on-error=true")
    assert "no GPU is visible" in result.stderr
    result = run_serve(tmp_path, STAGELOG_DEVICE="cpu", STAGELOG_TRITON_GPUS="0")
    assert f"--model-repository={ROOT / 'model_repository'}" in result.stdout


def test_dockerfile_copy_sources_exist_in_the_build_context():
    ignored = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")]
    for dockerfile in sorted((ROOT / "docker").glob("*/Dockerfile")):
        copies = re.findall(r"^COPY\s+(\S+)\s+\S+$", dockerfile.read_text(), re.M)
        assert copies, dockerfile
        for source in copies:
            assert (ROOT / source).exists(), (dockerfile.name, source)
            assert not any(source == i or source.startswith(i + "/") for i in ignored), source
