"""One typed settings object for the whole product, its fields in groups.

Values come, highest priority first, from: explicit overrides in code (CLI
options), environment variables prefixed ``TT_`` (``TT_DATABASE_URL`` ...),
a TOML file named by ``TT_CONFIG`` (default ``./tiktok-tracker.toml`` when it
exists), then the defaults below. Every setting is documented once, here; the
README's tables are generated from these descriptions (``settings_markdown``).

Each group is a class of its own (``PathsSettings``, ``AlertSettings`` ...) so
that it reads on its own; ``Settings`` inherits them all, so every setting is
still ``settings.<name>``, ``TT_<NAME>`` and a top-level ``<name>`` key in the
TOML file, whatever its group.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "TT_"
Preprocessing = Literal["caffe", "torch"]


def _words(value: Any) -> Any:
    """A list from the environment: a JSON array, or comma-separated words."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [word.strip() for word in text.split(",") if word.strip()]
    return value


# A list setting: a TOML array; in the environment a JSON array or comma-separated words.
StrList = Annotated[list[str], NoDecode, BeforeValidator(_words)]


def env_name(setting: str) -> str:
    """``smtp_to`` -> ``TT_SMTP_TO``: the environment variable of a setting."""
    return f"{ENV_PREFIX}{setting.upper()}"


class SettingsGroup(BaseModel):
    """A group of settings: its fields, its title (``model_config``: the README's section heading)
    and its docstring (the section's first line)."""


class PathsSettings(SettingsGroup):
    """Where this host keeps its data, targets, caches and results, and which media store every stage uses."""

    model_config = ConfigDict(title="Paths and storage")

    data_dir: Path = Field(
        Path("data"),
        description="Where the embedded database, media store and caches live.",
    )
    models_dir: Path = Field(Path("models"), description="Where target bundles are saved (one folder per target).")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the results database; default: SQLite file in data_dir.",
    )
    media_url: str = Field(
        "",
        description=(
            "The media store every stage reads and writes (videos, frame batches, scores, evidence, published targets): "
            "empty: the folder data_dir/media (one host); s3://bucket/prefix: an S3-compatible bucket, so that "
            "workers on other hosts need no shared disk; file:///path: another folder."
        ),
    )
    backbone_cache_dir: Path | None = Field(
        None,
        description=(
            "Where VGG16 models converted for OpenVINO/ONNX Runtime are cached (keyed by backbone identity, "
            "precision and tool versions); default: data_dir/cache/backbones."
        ),
    )
    feature_cache_dir: Path | None = Field(
        None,
        description=(
            "Where training caches the VGG16 features of labelled images (keyed by image content and the "
            "whole computation, so trainings and the agreement gate share them); default: data_dir/cache/features."
        ),
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
    def backbones_dir(self) -> Path:
        return self.backbone_cache_dir or self.cache_dir / "backbones"

    @property
    def features_dir(self) -> Path:
        return self.feature_cache_dir or self.cache_dir / "features"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"


class S3Settings(SettingsGroup):
    """The bucket behind `media_url = "s3://..."`: where it is and how to sign in."""

    model_config = ConfigDict(title="S3 media store")

    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint for MinIO, Ceph RGW, Garage, R2, moto (e.g. http://10.0.0.5:9000); empty: AWS."
    )
    s3_region: str | None = Field(None, description="S3 region (empty: the AWS configuration's, else us-east-1).")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key id; empty: the standard AWS chain (AWS_* variables, ~/.aws, instance role)."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key (never logged or printed).")


class ModelSettings(SettingsGroup):
    """The models that score frames: the VGG16 backbone of classifier targets, the face matcher of face targets."""

    model_config = ConfigDict(title="Models")

    vgg16_weights: str = Field(
        "imagenet",
        description=(
            "VGG16 backbone weights: 'imagenet' (Keras' own download), a path to a local .weights.h5 file, or 'random' (tests only)."
        ),
    )
    vgg16_preprocessing: Preprocessing | None = Field(
        None,
        description=(
            "Input preprocessing of the backbone weights: 'caffe' (Keras' imagenet "
            "file) or 'torch' (torchvision-converted weights). Required for a local file."
        ),
    )
    vgg16_precision: Literal["auto", "float32", "bfloat16", "int8"] = Field(
        "auto",
        description=(
            "Compute precision of the VGG16 forward pass: 'bfloat16' (4-8x faster on "
            "CPUs with AMX/AVX512-BF16 and on GPUs), 'int8' (static int8 on OpenVINO or ONNX Runtime, "
            "about 4x float32 on CPUs without fast bfloat16), 'float32', or 'auto' (bfloat16 where the "
            "hardware has it and ONEDNN_MAX_CPU_ISA allows it, else int8 where its runtimes are installed, "
            "else float32). Both keep the seed set's verdicts (README, Speed). Training always uses float32."
        ),
    )
    vgg16_runtime: Literal["auto", "keras", "onnxruntime", "openvino"] = Field(
        "auto",
        description=(
            "What runs the VGG16 forward pass: 'keras' (float32, bfloat16), 'openvino' or 'onnxruntime' "
            "(float32, int8; the Keras model exported to ONNX once and cached in backbone_cache_dir), "
            "or 'auto' (keras for float32/bfloat16, openvino for int8)."
        ),
    )
    face_tolerance: float = Field(
        0.5,
        gt=0,
        lt=1.5,
        description="Max dlib embedding distance for a face match (score = 1 - distance).",
    )
    face_upsample: int = Field(1, ge=0, le=3, description="Times the HOG face detector upsamples a frame (small faces).")


class ScoringSettings(SettingsGroup):
    """Which frames of a video are scored, in what batches, and what is kept of a positive one."""

    model_config = ConfigDict(title="Frames and scoring")

    frame_rate: float = Field(1.0, gt=0, description="Frames sampled per second of video.")
    max_frame_side: int = Field(1280, ge=64, description="Sampled frames larger than this are downscaled (longest side).")
    skip_loop_filter: bool = Field(
        False,
        description=(
            "Decode H.264/HEVC without the deblocking loop filter on all but keyframes (FFmpeg's "
            "skip_loop_filter=nokey): 8-19% less decoding CPU on the seed set (bench/decode_options.py), but "
            "sampled frames differ (mean 0.04-0.6 of 255) and classifier scores move by up to 0.1, more than "
            "the seed set's closest margin to the threshold, so it is off by default. false: frames exactly "
            "as OpenCV decodes them."
        ),
    )
    batch_size: int = Field(16, ge=1, description="Frames per backbone forward pass.")
    score_batch_frames: int = Field(
        64,
        ge=1,
        description=(
            "Most frames per forward pass of a score worker that scores several videos at once: each pass takes "
            "the next batch_size-frame chunk of up to score_batch_frames // batch_size videos. GPU hosts: 64-256."
        ),
    )
    score_batch_wait_ms: float = Field(
        20.0,
        ge=0,
        description=(
            "How long a forward pass that is not full waits for videos that the score worker has already taken "
            "from the queue (a lone video waits for nothing)."
        ),
    )
    score_videos_in_flight: int = Field(
        4,
        ge=1,
        description=(
            "Videos a score-only worker scores at once (threads of one process sharing its forward passes); "
            "1: one process per GPU (or one on a CPU host), one video at a time. GPU hosts: 16 or more."
        ),
    )
    early_verdict: bool = Field(
        True,
        description="Stop scoring a video once no remaining frame can change any verdict.",
    )
    complete_positive_timelines: bool = Field(
        True,
        description=(
            "After a positive early verdict (and its alert), score the video's remaining sampled frames at a lower "
            "priority, so that its positive frames, timestamps and evidence are every appearance, not the first few."
        ),
    )
    duplicate_tolerance: float = Field(
        1.0,
        ge=0,
        le=255,
        description=(
            "A sampled frame whose 32x32 grey thumbnail differs from the last scored frame's by at most "
            "this (mean absolute difference, 0-255) reuses its scores instead of being scored; 0 scores every frame. "
            "At 1.0: 23% of the seed set's frames reused, scores within 0.07, same verdicts."
        ),
    )
    evidence_frames: int = Field(
        6,
        ge=0,
        description="Positive frames kept as small evidence JPEGs per detection (highest scores first), for review after the video is deleted.",
    )


class RepostSettings(SettingsGroup):
    """When a video is a repost of an earlier one, and what its verdicts and alerts then are."""

    model_config = ConfigDict(title="Reposts")

    repost_matching: bool = Field(
        True,
        description="Recognise reposts by their frames' PDQ hashes (re-encoded, cropped, trimmed, mirrored ...), not only by identical bytes.",
    )
    repost_rule: Literal["mutual", "vpdq"] = Field(
        "mutual",
        description=(
            "When frames that match (vPDQ's frame rules: PDQ distance <= 31, quality >= 50, repeats counted once) "
            "link a video to an earlier one. 'mutual' (this project's rule): at least repost_link_at of its distinct frames "
            "match the other's, and of the other's match it. 'vpdq' (vPDQ's defaults): at least 80% of its frames match "
            "the other's (and 0% the other way), so any clip cut from a stored video links to it."
        ),
    )
    repost_link_at: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The 'mutual' rule's threshold: the share of each video's distinct frames that must match the other's.",
    )
    repost_hash_rate: float = Field(
        3.0,
        gt=0,
        le=60,
        description=(
            "Frames hashed per second for repost matching (the sampled frames among them; not stored): a copy trimmed by a "
            "fraction of a second, sped up or re-encoded at another frame rate is sampled at other instants, and matches "
            "through the frames between the samples. At or below frame_rate: only the sampled frames are hashed."
        ),
    )
    repost_reuse_at: float = Field(
        0.8,
        gt=0,
        le=1,
        description=(
            "A link at least this strong (the weaker of its two shares, against the original) takes the original's verdicts "
            "instead of being scored; weaker links are scored and still linked."
        ),
    )
    repost_wait_seconds: float = Field(
        600.0,
        ge=0,
        description="How long a strong repost waits for its original (still in the pipeline) to be scored before it is scored itself.",
    )
    repost_alerts: Literal["cluster", "each"] = Field(
        "cluster",
        description=(
            "'cluster': one alert per repost cluster and target; later reposts are counted in the next alert "
            "or digest of that target instead. 'each': every repost is alerted too (naming its original)."
        ),
    )


class PipelineSettings(SettingsGroup):
    """The distributed pipeline: its broker, its workers, retries of transient errors, the reaper, housekeeping."""

    model_config = ConfigDict(title="Pipeline")

    broker_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description=(
            "Celery broker (Redis) that carries pipeline tasks between `enqueue` and the "
            "workers; every host of one deployment uses the same. Empty: no broker."
        ),
    )
    broker_visibility_timeout: int = Field(
        3600,
        ge=1,
        description=(
            "Seconds after which a task held by a worker that vanished (killed, host lost) "
            "is handed to another worker. Keep it above the longest task."
        ),
    )
    broker_connect_timeout: float = Field(3.0, gt=0, description="Seconds `enqueue` waits for the broker before saying it is unreachable.")
    keep_videos: bool = Field(
        False,
        description="Keep downloaded videos in the media store after scoring (evidence thumbnails are always kept).",
    )
    task_retry_window: float = Field(
        900.0,
        gt=0,
        description=(
            "Seconds a pipeline stage keeps retrying a transient error (database, broker, network) before "
            "the video fails: outlasts an outage of that length. Keep it below stall_timeout."
        ),
    )
    task_retry_backoff: float = Field(
        2.0, gt=0, description="Seconds before a stage's first retry; doubled for each further one (with jitter)."
    )
    task_retry_backoff_max: float = Field(
        60.0,
        gt=0,
        description="Longest wait between two retries of a stage (seconds): how soon work resumes after an outage.",
    )
    stall_timeout: float = Field(
        7200.0,
        gt=0,
        description=(
            "A video whose status has not changed for this long (seconds) is requeued from its stage by beat's "
            "reaper, and failed with the reason after stall_requeues requeues. Keep it above the longest queue "
            "wait plus stage (download attempts included) and above task_retry_window."
        ),
    )
    stall_requeues: int = Field(2, ge=0, description="Times the reaper requeues a stalled video before it fails it with the reason.")
    lease_seconds: float = Field(
        30.0,
        ge=3,
        description=(
            "A running stage holds its video for this long (seconds), renewed every third of it while its "
            "worker lives: a video whose lease expired (its worker was killed or its host lost) is requeued by "
            "the reaper's next pass, or at once by a worker that starts. Shorter: faster recovery; too short "
            "for database hiccups: work done twice (never two verdicts or alerts)."
        ),
    )
    reaper_interval: float = Field(
        60.0,
        gt=0,
        description="Seconds between two runs of beat's reaper (stalled videos, positives that never got an alert row).",
    )
    housekeeping_interval: float = Field(
        3600.0,
        gt=0,
        description="Seconds between two runs of the beat's housekeeping (media of finished videos, stalled-video report).",
    )
    worker_queues: StrList = Field(
        default_factory=list,
        description=(
            "The queues of this worker's pool processes, set by `tiktok-tracker worker`: with any, a pool process "
            "connects to the database before its first task; with score, it also loads the models."
        ),
    )
    score_gpus: StrList = Field(
        default_factory=list,
        description=(
            "GPU ids a score worker's pool processes are spread over, one each (CUDA_VISIBLE_DEVICES of each); "
            "set by `tiktok-tracker worker` from CUDA_VISIBLE_DEVICES or nvidia-smi."
        ),
    )


class WatchSettings(SettingsGroup):
    """Where videos come from: the sources watches list, and how often beat looks for due work."""

    model_config = ConfigDict(title="Sources and watches")

    source_limit: int = Field(30, ge=1, description="Videos listed per source run, at most.")
    tiktok_ms_token: SecretStr | None = Field(
        None,
        description=(
            "msToken cookie of a tiktok.com browser session; needed by the TikTok trending "
            "and hashtag sources (TikTokApi: install the 'tiktok' extra, then `playwright install`)."
        ),
    )
    tiktok_browser: Literal["chromium", "firefox", "webkit"] = Field("chromium", description="Playwright browser that TikTokApi drives.")
    folder_settle_seconds: float = Field(
        2.0,
        ge=0,
        description="Files of a watched folder modified more recently than this are still being written: skipped.",
    )
    backlog_limit: int = Field(
        10000,
        ge=1,
        description=(
            "Videos queued or in a stage, at most, that watches add to: a watch run that would pass it queues what fits "
            "and leaves the rest for its next run (`watch list`: deferred). `enqueue` by hand passes it, with a warning."
        ),
    )
    watch_backlog_limit: int = Field(
        2000,
        ge=1,
        description="Videos queued or in a stage, at most, from one watch: a watch that lists thousands cannot bury the others.",
    )
    watch_poll_interval: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds between two looks of celery beat for due watches, failed alerts to retry and "
            "digests to send (a watch runs at most this much later than its --every says)."
        ),
    )


class DownloadSettings(SettingsGroup):
    """Fetching videos: what may be fetched, how big and long, retries and deadlines, what yt-dlp is given."""

    model_config = ConfigDict(title="Downloads")

    allow_hosts: StrList = Field(
        default_factory=list,
        description=(
            "Hosts, IP addresses or CIDR ranges exempt from the download safety check, which "
            "otherwise refuses loopback, private, link-local, multicast, reserved and cloud "
            "metadata addresses (e.g. '127.0.0.1', 'media.internal', '10.1.0.0/16')."
        ),
    )
    max_download_mb: float = Field(200.0, gt=0, description="Largest video file downloaded (MB); larger ones are refused.")
    max_video_seconds: float = Field(600.0, gt=0, description="Longest video downloaded (seconds); longer ones are refused.")
    download_timeout: float = Field(30.0, gt=0, description="Seconds without network progress before a download attempt times out.")
    max_download_seconds: float = Field(
        900.0, gt=0, description="Longest one download attempt may take (seconds), however slowly data arrives."
    )
    download_retries: int = Field(3, ge=0, description="Retries of a download or source listing after a timeout or network error.")
    download_retry_backoff: float = Field(2.0, ge=0, description="Seconds before the first download retry; doubled for each further one.")
    download_format: str = Field(
        "best[ext=mp4]/best",
        description="yt-dlp format selector; keep single-file formats unless ffmpeg is installed.",
    )
    proxy: str | None = Field(None, description="Proxy for listing and downloading (http://, https:// or socks5:// URL).")
    cookies_file: Path | None = Field(None, description="Netscape-format cookies file passed to yt-dlp (logged-in or age-gated videos).")
    impersonate: str | None = Field(
        None,
        description="Browser that yt-dlp impersonates, e.g. 'chrome' or 'chrome-124:windows-10' (needs curl_cffi).",
    )


class AlertSettings(SettingsGroup):
    """Alert channels (each channel module says which of these it reads), retries and cooldown."""

    model_config = ConfigDict(title="Alerts")

    alert_log: bool = Field(True, description="Write every alert to the log (the 'log' channel).")
    alert_webhook_urls: StrList = Field(
        default_factory=list,
        description="Generic webhooks: each gets the alert as JSON, the thumbnail base64-encoded.",
    )
    alert_slack_webhook_urls: StrList = Field(
        default_factory=list, description="Slack incoming-webhook URLs (thumbnail shown when it has a URL)."
    )
    alert_discord_webhook_urls: StrList = Field(
        default_factory=list, description="Discord webhook URLs (thumbnail attached to the message)."
    )
    smtp_host: str | None = Field(None, description="SMTP server for e-mail alerts; unset: no e-mail.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_user: str | None = Field(None, description="SMTP login user (no login when unset).")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password.")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="SMTP transport security: STARTTLS upgrade, implicit TLS, or none."
    )
    smtp_from: str | None = Field(None, description="Sender address of e-mail alerts (default: smtp_user).")
    smtp_to: StrList = Field(default_factory=list, description="Recipients of e-mail alerts.")
    alert_timeout: float = Field(10.0, gt=0, description="Seconds one alert delivery attempt may take.")
    alert_retries: int = Field(3, ge=0, description="Retries of a failing alert channel.")
    alert_retry_backoff: float = Field(
        2.0, ge=0, description="Seconds before an alert channel's first retry; doubled for each further one."
    )
    alert_cooldown_minutes: float = Field(
        0.0,
        ge=0,
        description=(
            "Minimum minutes between alerts for one target; positives found inside the window "
            "are held and sent together as one digest when it ends (0: alert on each positive)."
        ),
    )


class WebSettings(SettingsGroup):
    """The review web app: where it listens, who may log in, its cookies; and where Flower is."""

    model_config = ConfigDict(title="Review web app")

    web_host: str = Field(
        "127.0.0.1",
        description="Address `tiktok-tracker web` binds; any other than loopback needs web_password or web_auth_header.",
    )
    web_port: int = Field(8080, ge=1, le=65535, description="Port of the review web app.")
    web_password: SecretStr | None = Field(
        None, description="Password of the review web app's login (empty: no login, allowed on loopback only)."
    )
    web_user: str = Field("reviewer", description="Name recorded on reviews made after a password login.")
    web_auth_header: str = Field(
        "",
        description="Header an authenticating reverse proxy sets to the user name (e.g. X-Forwarded-User); trusted when set.",
    )
    web_secret: SecretStr | None = Field(
        None, description="Key that signs the web app's session cookies (empty: a new random key per start)."
    )
    web_secure_cookies: bool = Field(False, description="Send the session cookie over HTTPS only (behind TLS).")
    web_auth_role_header: str = Field(
        "",
        description="Header the authenticating proxy sets to the user's role (viewer, reviewer or admin); without it, web_default_role.",
    )
    web_default_role: Literal["viewer", "reviewer", "admin"] = Field(
        "reviewer", description="Role of a user named by web_auth_header when the proxy sends no role."
    )
    web_failed_login_limit: str = Field(
        "5/minute,20/hour",
        description="Failed logins allowed per client address and per account name before the login answers 429 (empty: no limit).",
    )
    web_session_idle_seconds: int = Field(
        8 * 3600, ge=0, description="A session unused this long is over (0: only logout or a password change ends it)."
    )
    flower_url: str = Field("", description="Where Flower is, for the pipeline page's link (e.g. http://127.0.0.1:5555).")


class RetentionSettings(SettingsGroup):
    """How long each kind of data is kept (`tiktok-tracker prune`; beat runs it every prune_interval). 0: for ever."""

    model_config = ConfigDict(title="Retention")

    retain_frame_data_days: float = Field(
        30.0,
        ge=0,
        description=(
            "Per-frame scores, frame hashes (the repost index) and stage timings of negative, unreviewed videos: "
            "dropped after this many days (the video and its verdict stay; it is no longer matched as a repost's original)."
        ),
    )
    retain_negative_days: float = Field(
        180.0,
        ge=0,
        description="Negative, unreviewed videos themselves (their rows and verdicts): deleted after this many days; listed again, such a video is scored again.",
    )
    retain_failed_days: float = Field(30.0, ge=0, description="Failed videos and their reasons: deleted after this many days.")
    retain_positive_days: float = Field(
        0.0,
        ge=0,
        description="Videos with a positive verdict or a review, their evidence and frame data: deleted after this many days (0: kept until deleted by hand).",
    )
    retain_target_versions: int = Field(
        3,
        ge=1,
        description="Published target versions kept in the media store besides the current one and every version a kept verdict names.",
    )
    prune_interval: float = Field(86400.0, gt=0, description="Seconds between two runs of beat's `prune` (daily).")
    prune_batch: int = Field(
        500, ge=1, le=5000, description="Videos removed per transaction (short transactions: workers never wait long)."
    )


class MonitoringSettings(SettingsGroup):
    """The metrics a Prometheus scrapes (`tiktok-tracker metrics`) and what `tiktok-tracker health` calls a failure."""

    model_config = ConfigDict(title="Monitoring")

    metrics_host: str = Field(
        "127.0.0.1", description="Address `tiktok-tracker metrics` binds; any other than loopback needs metrics_password."
    )
    metrics_port: int = Field(9808, ge=1, le=65535, description="Port of the metrics endpoint (/metrics).")
    metrics_user: str = Field("prometheus", description="User name of the metrics endpoint's basic auth.")
    metrics_password: SecretStr | None = Field(
        None, description="Password of the metrics endpoint's basic auth (empty: no auth, allowed on loopback only)."
    )
    health_stall_minutes: float = Field(
        15.0, gt=0, description="No video finished for this long while videos wait: `health` fails (and the TTNoProgress alert fires)."
    )
    health_failed_runs: int = Field(
        3, ge=1, description="A watch whose runs failed or were blocked this many times in a row fails `health` (TTWatchFailing)."
    )
    health_inspect_timeout: float = Field(
        1.0, gt=0, description="Seconds the workers have to say which queues they consume (`health`, the metrics)."
    )


# pydantic puts the fields of the last base first: the groups are listed last to first, so that
# `tiktok-tracker config` and the README show them first to last (SETTING_GROUPS' order).
class Settings(
    MonitoringSettings,
    RetentionSettings,
    WebSettings,
    AlertSettings,
    DownloadSettings,
    WatchSettings,
    PipelineSettings,
    RepostSettings,
    ScoringSettings,
    ModelSettings,
    S3Settings,
    PathsSettings,
    BaseSettings,
):
    """Every setting, each group's fields flat on one object (``settings.smtp_to``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", title="Settings")

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


SETTING_GROUPS: tuple[type[SettingsGroup], ...] = tuple(reversed(Settings.__bases__[:-1]))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings()


def _shown_default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value in ("", []):
        return "empty"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def settings_markdown() -> str:
    """The README's settings reference ("Configuration"): a section per group, a row per setting.
    ``tests/test_settings.py`` fails when the README's copy differs (``TT_UPDATE_README=1`` rewrites it)."""
    lines: list[str] = []
    for group in SETTING_GROUPS:
        lines += [f"### {group.model_config['title']}", "", (group.__doc__ or "").strip(), ""]
        lines += ["| setting | environment | default | meaning |", "| --- | --- | --- | --- |"]
        for name, field in group.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | `{env_name(name)}` | {_shown_default(field)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
