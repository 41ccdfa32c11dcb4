"""What an environment is made of (`ENVIRONMENTS`): a value of the core that the settings read
into, so that the roll-ups need nothing from the settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EnvironmentSpec(BaseModel):
    """What one environment is made of: the clusters (and objects) that must be healthy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clusters: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
