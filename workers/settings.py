"""One typed settings object for the whole product.

Values come, highest priority first, from: explicit overrides in code (CLI
options), environment variables prefixed ``TT_`` (``TT_DATABASE_URL`` ...),
a TOML file named by ``TT_CONFIG`` (default ``./tiktok-tracker.toml`` when it
exists), then the defaults below. Every setting is documented once, here; the
README's table is generated from these descriptions.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Preprocessing = Literal["caffe", "torch"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TT_", extra="ignore")

    data_dir: Path = Field(
        Path("data"),
        description="Where the embedded database, media store and caches live.",
    )
    models_dir: Path = Field(
        Path("models"), description="Where target bundles are saved (one folder per target)."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the results database; default: SQLite file in data_dir.",
    )
    vgg16_weights: str = Field(
        "imagenet",
        description=(
            "VGG16 backbone weights: 'imagenet' (Keras' own download), a path to a "
            "local .weights.h5 file, or 'random' (tests only)."
        ),
    )
    vgg16_preprocessing: Preprocessing | None = Field(
        None,
        description=(
            "Input preprocessing of the backbone weights: 'caffe' (Keras' imagenet "
            "file) or 'torch' (torchvision-converted weights). Required for a local file."
        ),
    )
    frame_rate: float = Field(1.0, gt=0, description="Frames sampled per second of video.")
    max_frame_side: int = Field(
        1280, ge=64, description="Sampled frames larger than this are downscaled (longest side)."
    )
    batch_size: int = Field(16, ge=1, description="Frames per backbone forward pass.")
    early_verdict: bool = Field(
        True,
        description="Stop scoring a video once no remaining frame can change any verdict.",
    )
    face_tolerance: float = Field(
        0.5,
        gt=0,
        lt=1.5,
        description="Max dlib embedding distance for a face match (score = 1 - distance).",
    )
    face_upsample: int = Field(
        1, ge=0, le=3, description="Times the HOG face detector upsamples a frame (small faces)."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tiktok-tracker.db').resolve()}"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = Path(os.environ.get("TT_CONFIG", "tiktok-tracker.toml"))
        if config.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings()
