"""The service configuration: one TOML file, secrets from CUSTODY_* environment variables."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.database_url import database_url_problem
from config.sections import (
    ConfigError,
    GmailSendConfig,
    GraphSendConfig,
    RepConfig,
    ServiceConfig,
    SmtpConfig,
    describe_validation_error,
)
from connectors.base import SourceSettings
from connectors.index import settings_models

CONFIG_ENV = "CUSTODY_CONFIG"
DEFAULT_CONFIG = Path("custody.toml")
WAYS_OUT = ("smtp", "graph_send", "gmail_send")
"""The sections that each make the outbox send through one delivery system, in the order they are declared."""
AnySource = Annotated[Union[settings_models()], Field(discriminator="kind")]  # type: ignore[valid-type]


class Settings(BaseSettings):
    """Read from custody.toml; any top-level key can be overridden as CUSTODY_<KEY>."""

    model_config = SettingsConfigDict(env_prefix="CUSTODY_", extra="forbid", env_nested_delimiter="__")

    data_dir: Path = Path("custody-data")
    database_url: SecretStr | None = None
    database_schema: str = ""
    policy_file: Path | None = None
    default_region: str = Field(default="US", min_length=2, max_length=2)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    batch_size: int = Field(default=500, ge=1, le=50_000)
    sync_workers: int = Field(default=2, ge=0, le=64)
    sync_readers_after_seconds: float = Field(default=0.25, ge=0, le=3600)
    reps: list[RepConfig] = Field(default_factory=list)
    sources: list[AnySource] = Field(default_factory=list)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    smtp: SmtpConfig | None = None
    graph_send: GraphSendConfig | None = None
    gmail_send: GmailSendConfig | None = None

    @field_validator("reps")
    @classmethod
    def _one_entry_per_rep(cls, reps: list[RepConfig]) -> list[RepConfig]:
        """Two entries for one rep would each overwrite the other's name, team and manager."""
        _refuse_repeats("email", [rep.email.strip().lower() for rep in reps])
        return reps

    @field_validator("reps")
    @classmethod
    def _one_person_per_address(cls, reps: list[RepConfig]) -> list[RepConfig]:
        """An address (primary, alias or personal) names one rep; two reps sharing one would merge them."""
        owner: dict[str, str] = {}
        for rep in reps:
            for address in (rep.email, *rep.aliases, *rep.personal_addresses):
                key = address.strip().lower()
                if owner.setdefault(key, rep.email) != rep.email:
                    raise ValueError(f"{address} is an address of both {owner[key]} and {rep.email}")
        return reps

    @field_validator("sources")
    @classmethod
    def _one_source_per_name(cls, sources: list[SourceSettings]) -> list[SourceSettings]:
        """A source's name keys its cursor and lease in the registry: two sources sharing one would
        resume from each other's cursor and skip mail."""
        _refuse_repeats("name", [source.name for source in sources])
        return sources

    @field_validator("graph_send", "gmail_send")
    @classmethod
    def _one_way_out(cls, section: GraphSendConfig | GmailSendConfig | None,
                     info: ValidationInfo) -> GraphSendConfig | GmailSendConfig | None:
        """One transport sends every letter: two would each look only in their own mailbox for a send
        left in doubt, and could send it again."""
        earlier = [name for name in WAYS_OUT[:WAYS_OUT.index(str(info.field_name))] if info.data.get(name) is not None]
        if section is not None and earlier:
            raise ValueError(f"set either [{earlier[0]}] or [{info.field_name}], not both")
        return section

    @model_validator(mode="after")
    def _sources_read_the_reps(self) -> Settings:
        """A source that can read many accounts and names none reads the configured reps'."""
        emails = [rep.email.strip().lower() for rep in self.reps]
        self.sources = [source.with_reps(emails) for source in self.sources]
        return self

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            problem = database_url_problem(url.get_secret_value())
            if problem:
                raise ValueError(problem)
        return url

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings

    def registry_url(self) -> str:
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'custody.db').resolve()}"

    def sends_mail(self) -> bool:
        """Whether the outbox has a way out: an SMTP relay, Microsoft Graph or the Gmail API."""
        return any(getattr(self, name) is not None for name in WAYS_OUT)

    def source(self, name: str) -> SourceSettings:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"sources: no source named {name!r}")


def _refuse_repeats(key: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"two entries have the {key} {value!r}")
        seen.add(value)


def config_path(explicit: Path | None) -> Path:
    return explicit or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_settings(path: Path | None = None) -> Settings:
    """Load and validate; relative paths in the file are relative to the file itself.

    A missing file is an error, never an empty config: a service started from the wrong
    directory would otherwise report healthy with no sources and a registry nobody meant."""
    path = config_path(path)
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path.absolute()}: config file not found (give --config PATH or set {CONFIG_ENV}; "
                          "`custody init PATH` writes one)") from None
    except OSError as error:
        raise ConfigError(f"{path.absolute()}: cannot read config file: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, data)) from None
    return _anchor_paths(settings, path.parent.resolve())


def _anchor_paths(settings: Settings, base: Path) -> Settings:
    def anchor(path: Path | None) -> Path | None:
        return None if path is None else (path if path.is_absolute() else base / path)

    settings.data_dir = anchor(settings.data_dir) or settings.data_dir
    settings.policy_file = anchor(settings.policy_file)
    settings.service.hr_folder = anchor(settings.service.hr_folder)
    for source in settings.sources:
        source.anchored(base)
    if settings.smtp:
        settings.smtp.ca_file = anchor(settings.smtp.ca_file)
        if settings.smtp.sent_folder:
            settings.smtp.sent_folder.ca_file = anchor(settings.smtp.sent_folder.ca_file)
    for section in (settings.graph_send, settings.gmail_send):
        for field, value in section or ():
            if isinstance(value, Path):
                setattr(section, field, anchor(value))
    return settings
