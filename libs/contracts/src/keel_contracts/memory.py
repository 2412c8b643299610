"""The memory service's entries, as its callers see them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MemoryType = Literal["episodic", "semantic", "procedural"]


class MemoryHit(BaseModel):
    """One retrieved entry; ``content`` came from whoever stored it, so it is untrusted."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: MemoryType
    content: str
    score: float = 0.0
    metadata: dict[str, str] = Field(default_factory=dict)
    tokens: int = 0
    session_id: str = ""
    created_at_ms: int = 0
