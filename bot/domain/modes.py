from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    LIVE = "LIVE"
    DRY_RUN = "DRY_RUN"
    REPLAY = "REPLAY"

    def __str__(self) -> str:
        return self.value
