from pathlib import Path

import pytest
import yaml

from reidlib.core import config

PROJECT = Path(__file__).resolve().parent.parent


def test_default_yaml_mirrors_the_dataclass_defaults():
    on_disk = yaml.safe_load((PROJECT / "config" / "default.yaml").read_text())
    assert config.to_dict(config.from_dict(on_disk)) == config.to_dict(config.Config())


def test_tiny_yaml_is_valid_and_small():
    cfg = config.load(PROJECT / "config" / "tiny.yaml")
    assert cfg.training.epochs == 1 and cfg.dataset.train_ids == 4


@pytest.mark.parametrize("data, key", [
    ({"detektion": {}}, "detektion"),
    ({"training": {"modle": "hacnn"}}, "training.modle"),
    ({"dataset": {"face_size": [8, 20], "faces": 3}}, "dataset.faces"),
])
def test_unknown_key_is_named(data, key):
    with pytest.raises(config.ConfigError, match=key.replace(".", r"\.")):
        config.from_dict(data)


def test_wrong_types_are_refused():
    with pytest.raises(config.ConfigError, match="training.epochs"):
        config.from_dict({"training": {"epochs": "many"}})
    with pytest.raises(config.ConfigError, match="dataset.face_size"):
        config.from_dict({"dataset": {"face_size": 12}})


def test_overrides_merge_nested():
    cfg = config.load(PROJECT / "config" / "default.yaml", {"detection": {"threshold": 0.7}})
    assert cfg.detection.threshold == 0.7
    assert cfg.detection.upscale == config.DetectionConfig().upscale


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(config.ConfigError, match="nothere.yaml"):
        config.load(tmp_path / "nothere.yaml")


def test_dataset_name_and_root_are_checked():
    with pytest.raises(config.ConfigError, match="'mars'"):
        config.from_dict({"dataset": {"name": "mars"}})
    with pytest.raises(config.ConfigError, match="dataset.root"):
        config.from_dict({"dataset": {"name": "viper"}})
