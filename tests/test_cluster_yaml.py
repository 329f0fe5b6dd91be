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
