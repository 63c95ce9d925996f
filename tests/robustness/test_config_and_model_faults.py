"""Hostile or malformed settings and model files (issue 16): refused quickly, in one bounded sentence that
names the file and the entry, never a hang, a traceback or a 15 MB message."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from hpd_imaging.errors import MAX_MESSAGE_CHARS, ConfigError, HpdImagingError, ModelError, shorten
from hpd_imaging.settings import load_config
from hpd_imaging.settings.yaml_guard import MAX_YAML_NODES, load_yaml_bounded

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "hpd_demo_synthetic.skops"


def alias_bomb(levels: int, width: int = 9, target: str = "run:\n  workers: *{last}\n") -> str:
    """The classic 'billion laughs': each anchor a list of ``width`` aliases of the previous one."""
    names = "abcdefghijklmnop"
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [" + ", ".join([f"*{names[i - 1]}"] * width) + "]")
    return "\n".join(lines) + "\n" + target.format(last=names[levels - 1])


def test_alias_bomb_config_is_refused_quickly(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9))  # 9^9 = 387 million strings once expanded; ~400 bytes of text
    assert len(bomb.read_bytes()) < 600
    t0 = time.perf_counter()
    with pytest.raises(
        ConfigError, match=rf"bomb.yaml: expected a YAML document of at most {MAX_YAML_NODES} nodes"
    ):
        load_config(bomb)
    assert time.perf_counter() - t0 < 2.0


def test_a_bomb_under_the_node_budget_gives_a_short_message(tmp_path: Path) -> None:
    """9^4 = 6,561 strings: within the node budget, but its validation error used to quote every one."""
    small = tmp_path / "small.yaml"
    small.write_text(alias_bomb(4))
    with pytest.raises(ConfigError, match=r"small.yaml: invalid settings: run.workers") as info:
        load_config(small)
    assert len(str(info.value)) <= MAX_MESSAGE_CHARS
    assert "characters omitted" in str(info.value)


def test_node_budget_boundary() -> None:
    """Exactly at the budget is read; one node more is refused (a list of n scalars is n + 1 nodes)."""
    at = "[" + ",".join(["1"] * 9) + "]"
    assert load_yaml_bounded(at, "x.yaml", max_nodes=10) == [1] * 9
    with pytest.raises(ConfigError, match="at most 9 nodes"):
        load_yaml_bounded(at, "x.yaml", max_nodes=9)
    with pytest.raises(ConfigError, match="at most 10 bytes, got 19 bytes"):
        load_yaml_bounded(at, "x.yaml", max_bytes=10)


def test_normal_settings_files_are_far_below_the_budgets() -> None:
    import yaml

    from hpd_imaging.settings.yaml_guard import expanded_nodes

    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        assert node is None or expanded_nodes(node) < MAX_YAML_NODES // 10, path
    assert load_config(REPO / "pipelines" / "default.yaml").run.patient_time_limit_s == 3600.0


def test_every_error_message_is_bounded() -> None:
    huge = "x" * 15_000_000
    message = f"file.dcm: expected a number, got {huge}"
    exc = HpdImagingError(message, path="file.dcm")
    assert len(str(exc)) == MAX_MESSAGE_CHARS
    assert str(exc).startswith("file.dcm: expected a number, got xxx")
    assert f"[{len(message) - MAX_MESSAGE_CHARS} characters omitted]" in str(exc)
    assert shorten("short") == "short"
    assert shorten("y" * MAX_MESSAGE_CHARS) == "y" * MAX_MESSAGE_CHARS  # boundary: kept whole


@pytest.fixture
def demo_model(tmp_path: Path) -> Path:
    if not DEMO_MODEL.exists():
        pytest.skip("models/hpd_demo_synthetic.skops not in this checkout")
    dst = tmp_path / "m.skops"
    shutil.copy(DEMO_MODEL, dst)
    shutil.copy(DEMO_MODEL.with_name(DEMO_MODEL.name + ".card.json"), dst.with_name("m.skops.card.json"))
    return dst


def _edit_card(model: Path, edit) -> None:
    card_path = model.with_name(model.name + ".card.json")
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(model_file="m.skops"), r"model card entry 'model_file': expected dict, got str"),
        (lambda c: c.update(label=["hpd"]), r"model card entry 'label': expected dict, got list"),
        (
            lambda c: c["threshold"].update(value="0.5"),
            r"model card entry 'threshold.value': expected int or float, got str",
        ),
        (
            lambda c: c["model_file"].pop("sha256"),
            r"model card entry 'model_file.sha256': expected it to be present",
        ),
    ],
)
def test_malformed_model_card_is_a_model_error(demo_model: Path, edit, message: str) -> None:
    from hpd_imaging.model import load_model

    _edit_card(demo_model, edit)
    with pytest.raises(ModelError, match=rf"m.skops.card.json: {message}"):
        load_model(demo_model)


def test_payload_without_definition_is_a_model_error(demo_model: Path) -> None:
    import skops.io as sio

    from hpd_imaging.model import load_model
    from hpd_imaging.model.persist import file_sha256

    payload = sio.load(demo_model, trusted=sio.get_untrusted_types(file=demo_model))
    del payload["definition"]
    sio.dump(payload, demo_model)
    _edit_card(demo_model, lambda c: c["model_file"].update(sha256=file_sha256(demo_model)))
    with pytest.raises(
        ModelError, match=r"m.skops: model payload entry 'definition': expected it to be present"
    ):
        load_model(demo_model)


def test_the_demo_model_still_loads(demo_model: Path) -> None:
    from hpd_imaging.model import load_model

    assert load_model(demo_model).definition
