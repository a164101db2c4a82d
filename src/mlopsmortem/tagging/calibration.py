"""The calibration file (`data/tagging_calibration.json`): semantic statistics and thresholds
and `component_min_mentions`, as `calibrate` fitted them; reading, writing, and the warnings
when it no longer fits the taxonomy or the model."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlopsmortem.settings import Settings
from mlopsmortem.tagging.tags import TaggingError
from mlopsmortem.tagging.taxonomy import Taxonomy

CALIBRATION_FILE = "tagging_calibration.json"
CALIBRATION_FORMAT = 1


@dataclass(frozen=True)
class Calibration:
    """Thresholds fitted on labelled stories (see `calibrate`); `digest` identifies the file."""

    model: str
    impacts: tuple[str, ...]  # impacts tagged semantically, in centring order
    mean: Mapping[str, float]
    std: Mapping[str, float]
    top: float  # score threshold for a story's best-ranked impact
    other: float  # score threshold for its other impacts
    component_min_mentions: int
    descriptions_digest: str  # of the impact descriptions the statistics were measured with
    derivation: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""
    # score = z_weight * z + mention_weight * log(1 + alias mentions in the text) + intercept
    # (the log-odds of a logistic fit); the defaults make the score z itself
    z_weight: float = 1.0
    mention_weight: float = 0.0
    intercept: float = 0.0
    # a story left without any impact gets its best-scored one (semantic_decisions' fallback)
    fallback: bool = False

    def score(self, z: float, mentions: int) -> float:
        """The semantic score of one impact of a story, compared with `top` / `other`."""
        return self.z_weight * z + self.mention_weight * math.log1p(mentions) + self.intercept

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "model": self.model,
            "component_min_mentions": self.component_min_mentions,
            "semantic": {
                "impacts": list(self.impacts),
                "thresholds": {"top": self.top, "other": self.other},
                "score": {
                    "z": self.z_weight,
                    "mentions": self.mention_weight,
                    "intercept": self.intercept,
                },
                "mean": dict(self.mean),
                "std": dict(self.std),
                "descriptions_digest": self.descriptions_digest,
                "fallback": self.fallback,
            },
            "derivation": dict(self.derivation),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, digest: str = "") -> Calibration:
        semantic = data["semantic"]
        impacts = tuple(str(i) for i in semantic["impacts"])
        mean = {i: float(semantic["mean"][i]) for i in impacts}
        std = {i: float(semantic["std"][i]) for i in impacts}
        if any(not s > 0 for s in std.values()):
            raise ValueError("every standard deviation must be positive")
        score = semantic.get("score", {"z": 1.0, "mentions": 0.0, "intercept": 0.0})
        minimum = int(data["component_min_mentions"])
        if minimum < 1:
            raise ValueError("component_min_mentions must be at least 1")
        return cls(
            model=str(data["model"]),
            impacts=impacts,
            mean=MappingProxyType(mean),
            std=MappingProxyType(std),
            top=float(semantic["thresholds"]["top"]),
            other=float(semantic["thresholds"]["other"]),
            component_min_mentions=minimum,
            descriptions_digest=str(semantic.get("descriptions_digest", "")),
            derivation=MappingProxyType(dict(data.get("derivation", {}))),
            digest=digest,
            z_weight=float(score["z"]),
            mention_weight=float(score["mentions"]),
            intercept=float(score["intercept"]),
            fallback=bool(semantic.get("fallback", False)),
        )


#: Used when there is no calibration file: no semantic step, the measured mention count.
UNCALIBRATED = Calibration(
    model="",
    impacts=(),
    mean=MappingProxyType({}),
    std=MappingProxyType({}),
    top=math.inf,
    other=math.inf,
    component_min_mentions=2,
    descriptions_digest="",
    digest="uncalibrated",
)


def calibration_path(settings: Settings) -> Path:
    return settings.data_dir / CALIBRATION_FILE


def load_calibration(path: Path) -> Calibration:
    """Read the calibration file; TaggingError naming the file when missing or malformed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaggingError(
            f"{path}: cannot read the tagging calibration ({exc.strerror or exc}); "
            "regenerate it with: python -m bench.tagging --write-calibration"
        ) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
        if data.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"unsupported format {data.get('format')!r}")
        return Calibration.from_json(data, digest=hashlib.sha256(raw).hexdigest()[:16])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TaggingError(f"{path}: invalid tagging calibration: {exc}") from exc


def write_calibration(path: Path, calibration: Calibration) -> None:
    path.write_text(json.dumps(calibration.to_json(), indent=2, sort_keys=False) + "\n")


def descriptions_digest(taxonomy: Taxonomy) -> str:
    text = json.dumps([[i.id, i.description] for i in taxonomy.impacts])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def stale_calibration_warnings(
    taxonomy: Taxonomy, calibration: Calibration, model: str
) -> tuple[list[str], bool]:
    warnings = []
    semantic_on = True
    if calibration.model != model:
        warnings.append(
            f"semantic impacts off: the calibration is for model {calibration.model!r}, "
            f"not {model!r}"
        )
        semantic_on = False
    missing = [i for i in calibration.impacts if taxonomy.impact(i) is None]
    if missing:
        warnings.append(f"calibrated impacts no longer in the taxonomy: {', '.join(missing)}")
    if calibration.descriptions_digest != descriptions_digest(taxonomy):
        warnings.append(
            "impact descriptions changed since calibration: recalibrate "
            "(python -m bench.tagging --write-calibration)"
        )
    return warnings, semantic_on
