"""Configuration files are data from elsewhere: YAML aliases (a few hundred bytes that expand to gigabytes) are
refused before anything is parsed into a configuration or stored."""

import time

import pytest

from attrdist.bench import LocalizationConfig
from attrdist.cli import main

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)) + "methods: *i\n"


def test_alias_bomb_is_refused_before_expansion(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 700
    start = time.perf_counter()
    with pytest.raises(ValueError, match="anchors and aliases are not allowed"):
        LocalizationConfig.load(path)
    assert time.perf_counter() - start < 5


def test_alias_bomb_on_the_command_line_stores_nothing(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    out = tmp_path / "run"
    assert main(["bench", "localization", "--config", str(path), "--out", str(out)]) == 2
    assert "anchors and aliases are not allowed" in capsys.readouterr().err
    assert not (out / "results.sqlite").exists()


def test_plain_configs_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("methods: [gradcam]\nmax_items: 3\n")
    assert LocalizationConfig.load(path).methods == ["gradcam"]
