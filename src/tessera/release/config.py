"""The `release:` section: what only the provider can declare about the released model.

Everything else in the release documents is read from what the pipeline measured or computed (the data
manifest, the checkpoints, the evaluation and energy reports). The fields in `REQUIRED_AT_RELEASE` have
empty defaults so that a run can train before its provider details are settled; `tessera release` stops
with a ConfigError naming the first empty one (tessera.release.validate).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from tessera.errors import ConfigError

__all__ = ["ReleaseConfig", "SOURCE_CATEGORIES", "REQUIRED_AT_RELEASE"]

SOURCE_CATEGORIES = {
    "public_datasets": "2.1 Publicly available datasets",
    "licensed_private": "2.2.1 Datasets commercially licensed by rightsholders or their representatives",
    "other_private": "2.2.2 Private datasets obtained from other third parties",
    "scraped": "2.3 Data crawled and scraped from online sources",
    "user_data": "2.4 User data",
    "synthetic": "2.5 Synthetic data",
    "other": "2.6 Other sources of data",
}
"""The AI Office template's data-source categories (section 2 of the public summary), by config name."""

REQUIRED_AT_RELEASE = ("provider", "contact", "intended_use", "content_types")
"""Keys the release refuses to document without (Annex XI 1(a)-(b), Annex XII 1(a), template 1.1, 1.3)."""


@dataclass
class ReleaseConfig:
    model_name: str = "tessera-demo"
    """Name of the released model (Hub repository name, template 1.2 'versioned model name')."""
    version: str = "0.1.0"
    """Version of this release; the documents name the model `<model_name> <version>`."""
    license: str = "apache-2.0"
    """Licence of the released weights (a Hub licence id, e.g. apache-2.0, mit, cc-by-4.0)."""
    provider: str = ""
    """Legal name of the provider placing the model on the market (required at release)."""
    contact: str = ""
    """Provider's contact: address or e-mail, also the point of contact for rightsholders' complaints
    (required at release)."""
    authorised_representative: str | None = None
    """Name and contact of the EU authorised representative (Art. 54), for providers outside the Union."""
    intended_use: str = ""
    """What the model is for and for whom (Annex XII 1(a); required at release)."""
    out_of_scope_use: str = ""
    """Uses the provider excludes (acceptable-use policy), if any."""
    limitations: str = ""
    """Known limitations to tell downstream providers, beyond what the evaluation shows."""
    repository: str | None = None
    """Hub repository id (or URL) the model card's loading example names; null: a local path."""
    publication_url: str | None = None
    """Where the weights, architecture and documents are publicly available, once they are (Art. 53(2));
    null: not published, and the open-source exemption does not apply."""
    monetised: bool | None = None
    """Whether access to the model is paid for or tied to paid services (Art. 53(2), recital 103); the
    open-source exemption needs an explicit false. Null: not declared."""
    placed_on_market: str | None = None
    """Date (YYYY-MM-DD) the model was first made available on the Union market (its publication date);
    null: not yet placed on the market."""
    ai_system_types: str = ""
    """The type and nature of AI systems the model can be integrated into (Annex XII 1(a)); empty: the
    documents say "provider to declare"."""
    dtype: Literal["checkpoint", "float32", "bfloat16", "float16"] = "checkpoint"
    """Weights dtype of the released safetensors ('checkpoint' keeps the trained dtype)."""
    source_categories: dict[str, str] = field(default_factory=dict)
    """Template category of a data source, by source name (keys of SOURCE_CATEGORIES); sources not
    listed take `default_source_category`."""
    default_source_category: str = "public_datasets"
    """Template category of the sources not in `source_categories`."""
    content_types: list[str] = field(default_factory=list)
    """Types of content in the training data (template 1.3), e.g. 'non-fiction text', 'literary text'
    (required at release)."""
    illegal_content_measures: str = ""
    """Measures against illegal content taken outside the pipeline (source selection, takedown
    handling); the pipeline's own filters and their counts are added from the data manifest."""
    tags: list[str] = field(default_factory=list)
    """Extra Hub tags for the model card (tessera adds moe, the languages and the architecture)."""

    def check(self, where: str) -> None:
        for key in ("model_name", "version", "license"):
            if not getattr(self, key).strip():
                raise ConfigError(f"{where}.{key}: must not be empty")
        if "/" in self.model_name:
            raise ConfigError(
                f"{where}.model_name: {self.model_name!r} must be a bare name; put the Hub namespace in "
                f"{where}.repository (e.g. my-org/{self.model_name.rsplit('/', 1)[-1]})"
            )
        allowed = ", ".join(SOURCE_CATEGORIES)
        for name, category in {**self.source_categories, "(default)": self.default_source_category}.items():
            if category not in SOURCE_CATEGORIES:
                key = "default_source_category" if name == "(default)" else f"source_categories.{name}"
                raise ConfigError(f"{where}.{key}: {category!r} is not a category; allowed: {allowed}")
        if self.placed_on_market is not None:
            try:
                dt.date.fromisoformat(self.placed_on_market)
            except ValueError:
                raise ConfigError(
                    f"{where}.placed_on_market: {self.placed_on_market!r} is not a date like 2026-03-01 "
                    "(or null: not yet placed on the market)"
                ) from None
