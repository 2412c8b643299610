"""The part of Grafana's dashboard JSON the renderer draws: rows, panels and their grid
positions, queries, units, thresholds and value mappings. Everything else is ignored, so a
dashboard edited in Grafana (which adds many fields) still loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Grafana's grid: 24 columns; a height unit is 30 px, and panels are 8 px apart.
GRID_COLUMNS = 24
ROW_PX = 30
GAP_PX = 8


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class GridPos(_Loose):
    x: int = Field(ge=0, lt=GRID_COLUMNS)
    y: int = Field(ge=0)
    w: int = Field(ge=1, le=GRID_COLUMNS)
    h: int = Field(ge=1)


class Target(_Loose):
    ref_id: str = Field(default="A", alias="refId")
    expr: str
    legend_format: str = Field(default="", alias="legendFormat")
    hide: bool = False


class ThresholdStep(_Loose):
    color: str
    value: float | None = None


class Thresholds(_Loose):
    steps: list[ThresholdStep] = Field(default_factory=list)


class ValueText(_Loose):
    text: str = ""
    color: str = ""


class FieldDefaults(_Loose):
    unit: str = "short"
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # Grafana's "value" mappings flattened to value -> text and colour.
    mappings: dict[str, ValueText] = Field(default_factory=dict)

    @field_validator("mappings", mode="before")
    @classmethod
    def _flatten(cls, raw: Any) -> Any:
        if not isinstance(raw, list):
            return raw
        flat: dict[str, Any] = {}
        for mapping in raw:
            if isinstance(mapping, dict) and mapping.get("type") == "value":
                flat.update(mapping.get("options", {}))
        return flat


class FieldConfig(_Loose):
    defaults: FieldDefaults = Field(default_factory=FieldDefaults)


class Panel(_Loose):
    id: int
    type: str
    title: str = ""
    description: str = ""
    grid: GridPos = Field(alias="gridPos")
    targets: list[Target] = Field(default_factory=list)
    field_config: FieldConfig = Field(default_factory=FieldConfig, alias="fieldConfig")
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_row(self) -> bool:
        return self.type == "row"


class Dashboard(_Loose):
    uid: str
    title: str
    description: str = ""
    panels: list[Panel]

    def height_units(self) -> int:
        return max(p.grid.y + p.grid.h for p in self.panels)


def load_dashboard(path: Path) -> Dashboard:
    return Dashboard.model_validate_json(path.read_text())
