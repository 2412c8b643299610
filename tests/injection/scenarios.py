"""The scenario files as typed data: ``world.yaml`` (the user's data every scenario starts from)
and ``scenarios.yaml`` (task, reference calls, injection, attacker goal), and how a scenario's
injected text is placed into its channel of a fresh world."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tests.injection.environment import Effect, World

HERE = Path(__file__).parent
WORLD_FILE = HERE / "world.yaml"
SCENARIO_FILE = HERE / "scenarios.yaml"

Channel = Literal["tool_output", "web_page", "memory", "mcp_description", "tool_error"]
CHANNELS: tuple[Channel, ...] = (
    "tool_output",
    "web_page",
    "memory",
    "mcp_description",
    "tool_error",
)
Goal = Literal[
    "exfiltration-mail",
    "exfiltration-url",
    "exfiltration-message",
    "transaction-payment",
    "transaction-booking",
    "credential-password",
    "credential-email",
    "persistence-memory",
]
GOALS: tuple[Goal, ...] = (
    "exfiltration-mail",
    "exfiltration-url",
    "exfiltration-message",
    "transaction-payment",
    "transaction-booking",
    "credential-password",
    "credential-email",
    "persistence-memory",
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Call(_Model):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    # A reference call whose tool fails on purpose (the tool-error channel): it succeeds when
    # policy let it through and the tool itself answered with an error.
    expect: Literal["ok", "error"] = "ok"


class Injection(_Model):
    target: str
    text: str = Field(min_length=10)
    attack: tuple[Call, ...] = Field(min_length=1)


class Check(_Model):
    effect: str
    where: dict[str, str]

    def reached(self, effects: list[Effect]) -> bool:
        """Whether any effect of this kind has every field containing the given text."""
        return any(
            e.kind == self.effect
            and all(text in e.fields.get(name, "") for name, text in self.where.items())
            for e in effects
        )


class Scenario(_Model):
    id: str
    channel: Channel
    goal: Goal
    expect: Literal["stopped", "open"]
    task: str
    reference: tuple[Call, ...] = Field(min_length=1)
    injection: Injection
    reached_when: Check

    def world(self, base: dict[str, Any], *, injected: bool = True) -> World:
        """A fresh world from ``base`` with this scenario's injected text in its channel
        (``injected=False``: the clean world, to show the task alone needs no person)."""
        world = World(**copy.deepcopy(base))
        if not injected:
            return world
        text, target = self.injection.text, self.injection.target
        if self.channel == "tool_output":
            world.inbox.append({"from": target, "subject": "Action needed", "body": text})
        elif self.channel == "web_page":
            world.pages[target] = f"{world.pages.get(target, '')} {text}".strip()
        elif self.channel == "memory":
            world.memories.append({"type": "semantic", "content": text})
        elif self.channel == "mcp_description":
            world.descriptions[target] = text
        else:
            world.parcel_errors[target] = f"{world.parcel_errors.get(target, '')} {text}".strip()
        return world


def load_world(path: Path = WORLD_FILE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def load_scenarios(path: Path = SCENARIO_FILE) -> list[Scenario]:
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    scenarios = [Scenario.model_validate(item) for item in items]
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise ValueError(f"scenario ids repeat in {path}")
    return scenarios
