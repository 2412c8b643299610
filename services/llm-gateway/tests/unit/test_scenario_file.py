"""Scenario files fail at load with the file, the line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_contracts.errors import ConfigError
from keel_llm_gateway.adapters.scenario_file import load_scenarios
from keel_llm_gateway.config import DEMO_SCENARIOS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    return path


def test_demo_file_loads() -> None:
    names = [s.name for s in load_scenarios(DEMO_SCENARIOS).scenarios]
    assert {"calculator", "clock", "bench-noop", "denied-calculation", "email"} <= set(names)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "scenarios:\n  - name: a\n    match: '(unclosed'\n    steps: [{content: x}]\n",
            r"scenarios\.yaml:3: scenarios\.0\.match: .*invalid regex",
        ),
        (
            "scenarios:\n  - name: a\n    match: x\n    steps:\n      - {}\n",
            r"scenarios\.yaml:5: scenarios\.0\.steps\.0: .*needs tool_calls or content",
        ),
        (
            "scenarios:\n  - name: a\n    match: x\n    steps: []\n",
            r"scenarios\.yaml:4: scenarios\.0\.steps: ",
        ),
        (
            "scenarios:\n  - name: a\n    match: '(\\d+)'\n    steps:\n      - content: '{2}'\n",
            r"unknown placeholder\(s\) 2",
        ),
        (
            "scenarios:\n  - name: a\n    match: x\n    steps:\n"
            "      - tool_calls: [{name: t, arguments: {a: [{b: '{who}'}]}}]\n",
            r"unknown placeholder\(s\) who",
        ),
        (
            "scenarios:\n  - name: a\n    match: x\n    steps:\n"
            "      - {content: y, times: lots}\n",
            r"neither a whole number nor a template",
        ),
        (
            "scenarios:\n  - {name: a, match: x, steps: [{content: y}]}\n"
            "  - {name: a, match: z, steps: [{content: y}]}\n",
            r"duplicate scenario name\(s\): a",
        ),
        (
            "scenarios:\n  - name: a\n    match: x\n    stepz: []\n",
            r"scenarios\.0\.steps: Field required \(and 1 more\)",
        ),
        ("scenarios: [\n", r"scenarios\.yaml:\d+: not valid YAML"),
    ],
)
def test_invalid_files_raise_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_scenarios(write(tmp_path, text))


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read scenario file .*nope\.yaml"):
        load_scenarios(tmp_path / "nope.yaml")


def test_empty_file_is_an_empty_script(tmp_path: Path) -> None:
    assert load_scenarios(write(tmp_path, "")).scenarios == ()
