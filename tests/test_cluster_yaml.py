"""cluster.yaml is a valid Ray cluster-launcher config (checked with Ray's own schema)."""

import importlib.util
import json
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"


def _ray_schema_path() -> Path:
    # find_spec locates the installed package without importing it (`import ray` ~3 s).
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "autoscaler" / "ray-schema.json"
    if not path.is_file():
        pytest.skip(f"this ray install ships no cluster-launcher schema at {path}")
    return path


@pytest.fixture(scope="module")
def config() -> dict:
    with open(CLUSTER_YAML) as f:
        cfg = yaml.safe_load(f)
    assert isinstance(cfg, dict), "cluster.yaml must be a mapping"
    return cfg


def test_cluster_yaml_matches_ray_schema(config):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(_ray_schema_path().read_text())
    jsonschema.validate(instance=config, schema=schema)


def test_head_node_type_is_declared(config):
    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types


def test_a_gpu_node_type_exists(config):
    gpu_types = [
        name
        for name, node in config["available_node_types"].items()
        if node.get("resources", {}).get("GPU", 0) >= 1
    ]
    assert gpu_types, "cluster.yaml needs a node type with GPU >= 1"


def test_every_node_installs_torch_before_the_package(config):
    # Installing cl_sim first would let pip resolve torch on its own terms.
    command_lists = [config.get("setup_commands", [])]
    command_lists += [
        node["worker_setup_commands"]
        for node in config["available_node_types"].values()
        if "worker_setup_commands" in node
    ]
    for commands in command_lists:
        text = " ".join(commands)
        assert "torch==2.13.0" in text and "install -e" in text
        assert text.index("torch==2.13.0") < text.index("install -e")


def test_ray_accepts_the_config(config):
    """Ray's own checks (after filling its defaults), beyond the plain schema."""
    _ray_schema_path()
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def _installed_ray() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ray")
    except PackageNotFoundError:
        pytest.skip("ray is not installed")


def test_ray_is_pinned_to_the_tested_version_everywhere(config):
    tested = _installed_ray()
    pin = f'"ray[default,train,tune]=={tested}"'
    assert f"ray=={tested}" in (REPO / "scripts" / "constraints.txt").read_text().split()  # what setup.sh installs
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'ray = ["ray[default,train,tune]>=2.60,<2.61"]' in pyproject and tested.startswith("2.60.")  # the range admits it
    for commands in (config["setup_commands"], config["available_node_types"]["gpu_worker"]["worker_setup_commands"]):
        assert pin in " ".join(commands)
    images = [config["docker"]["head_image"], config["docker"]["worker_image"]]
    assert all(image.startswith(f"rayproject/ray:{tested}-py3") for image in images)
    assert int(images[0].split("-py3")[1][:2]) >= 10  # Python >= 3.10
    assert config["docker"]["worker_image"].endswith("-gpu")  # the CUDA runtime for torch's CUDA build


def test_token_auth_on_every_node_and_the_job_command_is_documented(config):
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert sum("RAY_AUTH_MODE=token ray start" in c for c in starts) == 2
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    readme = (REPO / "README.md").read_text()
    assert "RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265" in readme
    assert "ray dashboard cluster.yaml" in readme and "execution.store_dir=s3://" in readme


def test_every_node_has_an_instance_profile_for_the_store(config):
    """The store, checkpoints and Tune results live on s3://: GPU workers need credentials too (Ray
    gives the head a default profile, workers none)."""
    for name, node in config["available_node_types"].items():
        assert "Arn" in node["node_config"].get("IamInstanceProfile", {}), name
