"""Load and validate the TOML config (DESIGN.md §4); every problem reported at once, by key.

``"env:NAME"`` values are read from the environment; a missing variable is an error that names
both the key and the variable. Secrets are kept as ``SecretStr`` so they never print.

Every key has a range (a hold of days, not 1e12 minutes; money and sizes a person could mean),
URLs and the listen address are parsed, store names are ``[a-z0-9_-]``, secrets are non-empty, and
the CSV files a store names are read here, once (and again on a SIGHUP reload), with their
problems (encoding, size, a bad row) named. A config that fails any of it is refused whole.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_NAME = "autofulfill.toml"
WOO_POLL_S = 60.0  # a WooCommerce store's default poll: its webhooks arrive late or not at all
AMAZON_REGIONS = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
SHIP_WHEN_DEFAULTS = {"shopify": ["PAID", "PARTIALLY_REFUNDED"], "woocommerce": ["PROCESSING"]}
MCF_SPEEDS = {"Standard", "Expedited", "Priority", "ScheduledDelivery"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STORE_NAME = re.compile(r"[a-z0-9_-]{1,64}")
MAX_DEPTH = 12  # TOML nesting: the deepest real key is 5 levels down
MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_CSV_CELL = 4096
DAY_S = 86400.0
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1000000"), decimal_places=4)]


def _non_empty(model: Any) -> Any:
    """Every secret a block gives is non-empty (an empty webhook_secret would accept anything
    signed with an empty key)."""
    empty = [name for name, value in model if isinstance(value, SecretStr)
             and not value.get_secret_value().strip()]
    if empty:
        raise ValueError(f"{', '.join(empty)} must not be empty (or leave the key out)")
    return model


def _http_url(v: str, *, empty_ok: bool = False) -> str:
    """``v`` when it is an http(s) URL with a host (ValueError otherwise)."""
    if not v and empty_ok:
        return v
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(v) > 2048:
        raise ValueError(f"{v[:80]!r} is not an http(s) URL with a host")
    return v


class ConfigError(Exception):
    """The config cannot be used; ``problems`` lists every one as 'key: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceConfig(_Model):
    database_url: str = "sqlite:///var/autofulfill.db"
    broker_url: str = ""
    data_dir: str = Field("var", min_length=1, max_length=1024)
    listen: str = "127.0.0.1:8000"
    poll_interval_s: float = Field(300, gt=0, le=DAY_S)
    tracking_interval_s: float = Field(600, gt=0, le=DAY_S)
    release_interval_s: float = Field(5, gt=0, le=3600)
    poll_overlap_s: float = Field(120, ge=0, le=DAY_S)
    task_time_limit_s: float = Field(300, gt=0, le=DAY_S)
    # A step's hold on a shipment or an order: renewed every lease_s / 3 while its worker lives (up
    # to task_time_limit_s), so a dead worker's work is taken over within lease_s.
    lease_s: float = Field(30, ge=3, le=600)
    # Work enqueued but never started (its message lost: a broker restart) is enqueued again after this.
    redrive_after_s: float = Field(120, ge=5, le=DAY_S)
    visibility_timeout_s: float = Field(3600, gt=0, le=7 * DAY_S)
    max_retries: int = Field(8, ge=0, le=100)
    # The steps wait on Amazon, the stores and EasyPost, not on the CPU: threads, many of them. A
    # task past task_time_limit_s loses its leases (the heartbeat stops), so its work is taken over.
    # "prefork" (processes; Celery kills a task at its time limit) wants a concurrency near the cores.
    worker_pool: Literal["threads", "prefork"] = "threads"
    worker_concurrency: int = Field(16, ge=1, le=512)
    request_timeout_s: float = Field(15, ge=1, le=300)  # web: a request's headers, body and answer
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "autofulfill"  # broker queue name
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in LOG_LEVELS:
            raise ValueError(f"{v[:40]!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return v.upper()

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if v.startswith("unix:") and len(v) > 5:
            return v
        host, sep, port = v.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not (sep and port.isdigit() and port.isascii() and 0 < int(port) < 65536 and host
                and re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", host)):
            raise ValueError(f"{v[:80]!r} is not HOST:PORT (e.g. 127.0.0.1:8000, [::1]:8000) or unix:PATH")
        return v

    @field_validator("database_url")
    @classmethod
    def _database(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
        if url.get_backend_name() == "postgresql" and not url.database:
            raise ValueError("a postgresql URL needs a database name (…/DB)")
        return v

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, v: str) -> str:
        if not v:
            return v
        try:
            parts = urlsplit(v)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a broker URL ({exc})") from None
        if parts.scheme in ("redis", "rediss"):
            db = parts.path.strip("/")
            if not parts.hostname or (db and not db.isdigit()) or port == 0:
                raise ValueError("a Redis URL is redis://HOST[:PORT][/DB] (DB a number)")
        elif not parts.scheme.startswith("sqla+"):
            raise ValueError('use redis://HOST:PORT/DB, sqla+sqlite:///PATH, or "" (embedded)')
        return v

    @model_validator(mode="after")
    def _limits_below_visibility(self) -> ServiceConfig:
        if self.task_time_limit_s * 2 >= self.visibility_timeout_s:
            raise ValueError("visibility_timeout_s must exceed twice task_time_limit_s "
                             "(a redelivered task must never overlap a running one)")
        return self

    @property
    def stale_after_s(self) -> float:
        """A claimed step older than this is presumed dead and re-driven (lookup first)."""
        return self.task_time_limit_s + 30


class AmazonConfig(_Model):
    region: Literal["na", "eu", "fe"] = "na"
    marketplace_id: str
    client_id: SecretStr
    client_secret: SecretStr
    refresh_token: SecretStr
    endpoint: str = ""
    token_url: str = "https://api.amazon.com/auth/o2/token"
    quota: dict[str, tuple[Annotated[float, Field(gt=0, le=1000)], Annotated[int, Field(ge=1, le=10000)]]] = \
        Field(default_factory=dict)

    @model_validator(mode="after")
    def _secrets_given(self) -> Any:
        return _non_empty(self)

    @field_validator("endpoint", "token_url")
    @classmethod
    def _urls(cls, v: str) -> str:
        return _http_url(v, empty_ok=True)

    @property
    def base_url(self) -> str:
        return (self.endpoint or AMAZON_REGIONS[self.region]).rstrip("/")


class AddressConfig(_Model):
    name: str
    street1: str
    street2: str = ""
    city: str
    state: str = ""
    zip: str
    country: str = "US"
    phone: str = ""
    company: str = ""


class ParcelConfig(_Model):
    length_in: Decimal = Field(gt=0, le=1000)
    width_in: Decimal = Field(gt=0, le=1000)
    height_in: Decimal = Field(gt=0, le=1000)
    weight_oz: Decimal = Field(gt=0, le=10000)


class CustomsConfig(_Model):
    """``[labels.<name>] customs``: how international labels are declared (EasyPost CustomsInfo)."""

    # The person certifying the declaration (EasyPost customs_signer). Needed only when an
    # international label is bought; without it such a shipment parks naming this key.
    signer: str = ""
    contents_type: Literal["merchandise", "gift", "documents", "returned_goods", "sample", "dangerous_goods",
                           "humanitarian_donation", "other"] = "merchandise"
    contents_explanation: str = Field("", max_length=255)  # required with contents_type = "other"
    # US exports: NOEEI 30.37(a) covers shipments with no Schedule B line over $2,500; above
    # that an EEI filing (AES) is needed and the shipment parks.
    eel_pfc: str = Field("NOEEI 30.37(a)", min_length=1)
    non_delivery_option: Literal["return", "abandon"] = "return"
    restriction_type: Literal["none", "other", "quarantine", "sanitary_phytosanitary_inspection"] = "none"
    restriction_comments: str = ""  # required when restriction_type is not "none"

    @model_validator(mode="after")
    def _explained(self) -> CustomsConfig:
        if self.contents_type == "other" and not self.contents_explanation.strip():
            raise ValueError('contents_type = "other" needs contents_explanation (what the parcel holds)')
        if self.restriction_type != "none" and not self.restriction_comments.strip():
            raise ValueError(f'restriction_type = "{self.restriction_type}" needs restriction_comments')
        return self


class CustomsItemConfig(_Model):
    """What customs are told about one store SKU; a blank field falls back to the line's title
    (description) or the from_address country (origin_country)."""

    description: str = ""
    hs_tariff_number: str = ""  # 6 to 10 digits, dots allowed: "610910", "6109.10.0012"
    origin_country: str = ""  # ISO 3166-1 alpha-2, where the goods were made

    @field_validator("description")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @field_validator("hs_tariff_number")
    @classmethod
    def _hs(cls, v: str) -> str:
        v = v.strip()
        digits = v.replace(".", "")
        if v and not (digits.isdigit() and digits.isascii() and 6 <= len(digits) <= 10):
            raise ValueError(f"{v!r} is not an HS code: use 6 to 10 digits, dots allowed (e.g. 6109.10.0012)")
        return v

    @field_validator("origin_country")
    @classmethod
    def _country(cls, v: str) -> str:
        v = v.strip().upper()
        if v and not (len(v) == 2 and v.isascii() and v.isalpha()):
            raise ValueError(f"{v!r} is not a two-letter country code (ISO 3166-1, e.g. US, CN)")
        return v


class LabelsConfig(_Model):
    provider: Literal["easypost"] = "easypost"
    api_key: SecretStr
    endpoint: str = "https://api.easypost.com/v2"
    # cheapest | fastest | an ordered list of allowed "Carrier:Service" (first one offered wins)
    choose: Literal["cheapest", "fastest"] | list[str] = "cheapest"
    from_address: AddressConfig
    default_parcel: ParcelConfig
    label_format: Literal["PDF", "PNG", "ZPL"] = "PDF"
    # When the tracking number goes to the store: when the label is bought, or once the carrier
    # has scanned the parcel (the customer is not told about a parcel still on the shelf).
    push_tracking: Literal["at_purchase", "first_scan"] = "at_purchase"
    timeout_s: float = Field(30, gt=0, le=300)
    customs: CustomsConfig = Field(default_factory=CustomsConfig)  # international labels only

    @model_validator(mode="after")
    def _secrets_given(self) -> Any:
        return _non_empty(self)

    @field_validator("endpoint")
    @classmethod
    def _urls(cls, v: str) -> str:
        return _http_url(v)

    @field_validator("choose")
    @classmethod
    def _pairs(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            bad = [c for c in v if ":" not in c]
            if bad or not v:
                raise ValueError(f"list entries must be 'Carrier:Service', got {bad or 'an empty list'}")
        return v


class RoutingConfig(_Model):
    default: Literal["self_ship", "fba", "hold"] = "self_ship"  # lines whose SKU is not mapped
    sku_map: dict[str, str] = Field(default_factory=dict)  # store SKU -> Amazon seller SKU
    sku_map_csv: str | None = None  # columns store_sku,seller_sku; the inline map wins
    speeds: dict[str, str] = Field(default_factory=dict)  # shipping method title -> MCF speed
    unmapped_method: Literal["standard", "self_ship"] = "standard"  # method not in speeds
    fba_countries: list[str] = Field(default_factory=lambda: ["US"])
    outside_fba_countries: Literal["self_ship", "hold"] = "self_ship"
    split: bool = True  # FBA and self-ship lines of one order may ship separately
    mixed: Literal["hold", "self_ship", "fba_if_all_available"] = "hold"  # a mixed order, split = false
    fallback: Literal["self_ship", "hold"] = "self_ship"  # lines Amazon cannot fulfil (preview)
    preview: bool = True  # ask Amazon (getFulfillmentPreview) before sending lines to FBA
    # "cheapest": lines that could go either way take the cheaper of the MCF preview's fees and
    # the best label rate + self_ship_cost_per_order, when the label meets the requested speed.
    prefer: Literal["rules", "cheapest"] = "rules"
    features: list[str] = Field(default_factory=list)  # MCF featureConstraints for every order
    no_fba_tags: list[str] = Field(default_factory=lambda: ["no-fba"])  # order tags: never FBA
    hold_tags: list[str] = Field(default_factory=lambda: ["hold"])  # order tags: park for a person
    exclude_skus: list[str] = Field(default_factory=list)  # never auto-fulfilled: parked; globs ok ("GIFT-*")
    max_order_value: Decimal | None = Field(None, gt=0, le=Decimal("1000000000"))  # above: parked for review
    max_order_quantity: int | None = Field(None, gt=0, le=1_000_000)  # units above: parked for review

    @field_validator("speeds")
    @classmethod
    def _known_speeds(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(s for s in v.values() if s not in MCF_SPEEDS)
        if bad:
            raise ValueError(f"unknown MCF speed {bad}; use one of {sorted(MCF_SPEEDS)}")
        return v


class InventoryConfig(_Model):
    """``[stores.<name>.inventory]``: FBA stock -> store stock, per SKU mapped in sku_map.

    The store may sell Amazon's fulfillable units minus the units of paid orders not yet sent to
    Amazon (every store on the account) minus the buffer, never below 0 (README: Inventory sync)."""

    enabled: bool = False
    location: str = ""  # Shopify: the location (name or gid) whose `available` mirrors FBA
    interval_s: float = Field(600, ge=10)
    buffer: int = Field(0, ge=0)  # units held back per SKU
    buffer_percent: Decimal = Field(Decimal(0), ge=0, le=100)  # of Amazon's fulfillable, rounded up
    buffers: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)  # per store SKU
    dry_run: bool = False  # compute and record every pass, write nothing to the store


class StoreConfig(_Model):
    platform: Literal["shopify", "woocommerce"]
    shop_url: str
    access_token: SecretStr | None = None
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    query_string_auth: bool = False  # WooCommerce keys in the query string (hosts that drop Authorization)
    webhook_secret: SecretStr | None = None
    api_version: str = "2026-01"
    amazon: str | None = None
    labels: str | None = None
    order_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,12}$")]
    hold_minutes: float = Field(0, ge=0, le=7 * 24 * 60)  # at most a week
    notify_customer: bool = True
    # Statuses that ship: Shopify financial statuses; WooCommerce order statuses. None = the
    # platform's default (see SHIP_WHEN_DEFAULTS).
    ship_when: list[str] | None = None
    initial_lookback_hours: float = Field(24, gt=0, le=24 * 366)
    # This store's reconciliation poll; unset: [service] poll_interval_s, but at most 60 s for a
    # WooCommerce store, whose webhooks come late (its Action Scheduler) or not at all.
    poll_interval_s: float | None = Field(None, gt=0, le=DAY_S)
    packing_slip_comment: str = Field("Thank you for your order", max_length=250)
    complete_on_ship: bool = True
    dry_run: bool = False  # run everything, record what would be sent, send nothing (no MCF, no label)
    self_ship_cost_per_order: Money = Decimal(0)  # packing and labour, for prefer = cheapest
    # Self-ship parcels per store SKU (inches, ounces), inline and/or from a CSV file with the
    # columns sku,length_in,width_in,height_in,weight_oz; lines without one use default_parcel.
    parcels: dict[str, ParcelConfig] = Field(default_factory=dict)
    parcels_csv: str | None = None
    # What international labels declare per store SKU, inline and/or from a CSV file with the
    # columns sku,description,hs_tariff_number,origin_country; the inline table wins.
    customs_items: dict[str, CustomsItemConfig] = Field(default_factory=dict)
    customs_items_csv: str | None = None
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    # WooCommerce has no order tags; routing's tags (no_fba_tags, hold_tags, BLOCK_AMZL, ...) come
    # from order meta_data entries with these keys, the value "no-fba, BLOCK_AMZL" or a list of strings.
    tag_meta_keys: list[str] = Field(default_factory=lambda: ["autofulfill_tags"])
    # WooCommerce: each of these words found in the customer's note (whole word, any case) becomes
    # a tag. Off by default: the customer writes the note, so a keyword gives them a say in routing.
    note_keywords: list[str] = Field(default_factory=list)

    @property
    def ship_statuses(self) -> list[str]:
        return [s.upper() for s in (self.ship_when or SHIP_WHEN_DEFAULTS[self.platform])]

    @field_validator("self_ship_cost_per_order")
    @classmethod
    def _cents(cls, v: Decimal) -> Decimal:
        return v.quantize(Decimal("0.01"))  # a TOML 2.5 is shown as 2.50, like a price

    @field_validator("shop_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return _http_url(v).rstrip("/")

    @model_validator(mode="after")
    def _secrets_given(self) -> Any:
        return _non_empty(self)

    @model_validator(mode="after")
    def _credentials(self) -> StoreConfig:
        if self.platform == "shopify":
            if self.access_token is None and (self.client_id is None or self.client_secret is None):
                raise ValueError("a shopify store needs access_token, or client_id and client_secret")
        elif self.consumer_key is None or self.consumer_secret is None:
            raise ValueError("a woocommerce store needs consumer_key and consumer_secret")
        return self

    @model_validator(mode="after")
    def _woocommerce_only(self) -> StoreConfig:
        if self.platform == "shopify" and self.note_keywords:
            raise ValueError("note_keywords is for woocommerce stores only; a shopify order has its own "
                             "tags, so remove note_keywords from this store")
        return self

    @model_validator(mode="after")
    def _inventory(self) -> StoreConfig:
        inv = self.inventory
        if self.platform == "shopify" and inv.enabled and not inv.location.strip():
            raise ValueError("inventory.location: a shopify store syncing stock needs the location "
                             '(name or gid) that holds the FBA stock, e.g. location = "Amazon FBA"')
        if self.platform == "woocommerce" and inv.location:
            raise ValueError("inventory.location is for shopify stores only (WooCommerce has one "
                             "stock_quantity per product): remove it")
        if inv.enabled and self.amazon is None:
            raise ValueError("inventory: enabled = true needs the store's amazon account")
        return self


class AlertsConfig(_Model):
    """Where a person hears about parked orders, failing store APIs and disabled webhooks."""

    webhook_url: SecretStr | None = None  # Slack-compatible incoming webhook: POST {"text": ...}
    email_to: list[str] = Field(default_factory=list)
    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: SecretStr | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "autofulfill@localhost"
    smtp_starttls: bool = True
    api_failing_minutes: float = Field(15, gt=0, le=7 * 24 * 60)  # alert when a store's API fails this long
    digest_hour_utc: int = Field(8, ge=0, le=23)  # daily digest of still-parked orders
    timeout_s: float = Field(10, gt=0, le=60)

    @model_validator(mode="after")
    def _secrets_given(self) -> Any:
        return _non_empty(self)

    @model_validator(mode="after")
    def _somewhere(self) -> AlertsConfig:
        if self.webhook_url is None and not self.email_to:
            raise ValueError("alerts need webhook_url and/or email_to")
        if self.email_to and not self.smtp_host:
            raise ValueError("email_to needs smtp_host")
        return self


class Config(_Model):
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    alerts: AlertsConfig | None = None
    amazon: dict[str, AmazonConfig] = Field(default_factory=dict)
    labels: dict[str, LabelsConfig] = Field(default_factory=dict)
    stores: dict[str, StoreConfig] = Field(default_factory=dict)
    base_dir: Path = Path(".")

    @model_validator(mode="after")
    def _references(self) -> Config:
        problems = [f"stores.{name[:64]}: a store name is 1 to 64 of a-z, 0-9, _ and - (it names files "
                    "and URLs)" for name in self.stores if not STORE_NAME.fullmatch(name)]
        for name, store in self.stores.items():
            if store.amazon is not None and store.amazon not in self.amazon:
                problems.append(f"stores.{name}.amazon: no [amazon.{store.amazon}] block")
            if store.labels is not None and store.labels not in self.labels:
                problems.append(f"stores.{name}.labels: no [labels.{store.labels}] block")
            if store.routing.sku_map and store.amazon is None:
                problems.append(f"stores.{name}.amazon: sku_map sends lines to FBA, "
                                "so the store needs an amazon account")
        prefixes = [s.order_prefix for s in self.stores.values()]
        for p in sorted({p for p in prefixes if prefixes.count(p) > 1}):
            problems.append(f"stores: order_prefix {p!r} is used by more than one store")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def parcels(self, store_name: str) -> dict[str, ParcelConfig]:
        """The store's SKU parcels: the CSV file's rows (read at load), the inline table over them."""
        return self.store(store_name).parcels

    def customs_items(self, store_name: str) -> dict[str, CustomsItemConfig]:
        """The store's SKU customs data: the CSV file's rows (read at load), the inline table over them."""
        return self.store(store_name).customs_items

    def path(self, value: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(value)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def data_dir(self) -> Path:
        return self.path(self.service.data_dir)

    @property
    def database_url(self) -> str:
        return _relative_sqlite(self.service.database_url, self.base_dir)

    @property
    def broker_url(self) -> str:
        if self.service.broker_url:
            return _relative_sqlite(self.service.broker_url, self.base_dir)
        return f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return not self.service.broker_url

    def store(self, name: str) -> StoreConfig:
        try:
            return self.stores[name]
        except KeyError:
            raise ConfigError([f"stores.{name}: no such store"]) from None

    def poll_interval(self, name: str) -> float:
        """Seconds between this store's reconciliation polls (see StoreConfig.poll_interval_s)."""
        store = self.store(name)
        if store.poll_interval_s is not None:
            return store.poll_interval_s
        if store.platform == "woocommerce":
            return min(WOO_POLL_S, self.service.poll_interval_s)
        return self.service.poll_interval_s


def _csv_rows(path: Path, what: str, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file with at least ``columns``; ConfigError naming the file (and
    the line) when it cannot be read, is not UTF-8, is too large, or a column is missing."""
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise ConfigError([f"{path}: the {what} CSV is over {MAX_CSV_BYTES // 2**20} MiB"])
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read {what} CSV ({exc.strerror})"]) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise ConfigError([f"{path}: the {what} CSV is UTF-16, not UTF-8: save it as UTF-8 "
                           "(Excel: CSV UTF-8)"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: the {what} CSV is not UTF-8 (byte {raw[exc.start]:#04x}; "
                           "Latin-1 or Windows-1252?): save it as UTF-8"]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise ConfigError([f"{path}: missing column(s) {sorted(missing)}; "
                               f"needs the columns {','.join(columns)}"])
        for row in reader:
            cells = {k: (v or "") for k, v in row.items() if isinstance(k, str)}
            if any(len(v) > MAX_CSV_CELL for v in cells.values()):
                raise ConfigError([f"{path}:{reader.line_num}: a cell is longer than {MAX_CSV_CELL} "
                                   "characters"])
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ConfigError([f"{path}:{reader.line_num + 1}: not a readable CSV row ({exc})"]) from None
    return rows


def read_sku_map_csv(path: Path) -> dict[str, str]:
    """store_sku,seller_sku rows; ConfigError naming the file and line."""
    out: dict[str, str] = {}
    problems = []
    for line, row in _csv_rows(path, "SKU map", ("store_sku", "seller_sku")):
        store_sku, seller_sku = row["store_sku"].strip(), row["seller_sku"].strip()
        if not store_sku or not seller_sku:
            problems.append(f"{path}:{line}: both store_sku and seller_sku are needed")
        else:
            out[store_sku] = seller_sku
    if problems:
        raise ConfigError(problems)
    return out


def read_parcels_csv(path: Path) -> dict[str, ParcelConfig]:
    """sku,length_in,width_in,height_in,weight_oz rows; ConfigError naming the file and line."""
    out: dict[str, ParcelConfig] = {}
    problems: list[str] = []
    dims = ("length_in", "width_in", "height_in", "weight_oz")
    for line, row in _csv_rows(path, "parcels", ("sku", *dims)):
        try:
            out[row["sku"].strip()] = ParcelConfig.model_validate({k: row[k].strip() for k in dims})
        except (ValidationError, InvalidOperation) as exc:
            problems.append(f"{path}:{line}: SKU {row['sku']!r}: not a positive number "
                            f"({str(exc).splitlines()[0]})")
    if problems:
        raise ConfigError(problems)
    return out


def read_customs_items_csv(path: Path) -> dict[str, CustomsItemConfig]:
    """sku,description,hs_tariff_number,origin_country rows (blank cells allowed, the SKU not);
    ConfigError naming the file and line."""
    out: dict[str, CustomsItemConfig] = {}
    problems: list[str] = []
    fields = ("description", "hs_tariff_number", "origin_country")
    for line, row in _csv_rows(path, "customs items", ("sku", *fields)):
        sku = row["sku"].strip()
        if not sku:
            problems.append(f"{path}:{line}: the sku is empty")
            continue
        try:
            out[sku] = CustomsItemConfig.model_validate({k: row[k] for k in fields})
        except ValidationError as exc:
            why = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            problems.append(f"{path}:{line}: SKU {sku!r}: {why}")
    if problems:
        raise ConfigError(problems)
    return out


def _relative_sqlite(url: str, base: Path) -> str:
    for scheme in ("sqlite:///", "sqla+sqlite:///"):
        if url.startswith(scheme) and not url[len(scheme):].startswith("/") and url != scheme:
            rest = url[len(scheme):]
            if rest and rest != ":memory:":
                return scheme + str((base / rest).resolve())
    return url


def _resolve_env(node: Any, key: str, env: dict[str, str], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env(v, f"{key}.{k}" if key else k, env, problems)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, f"{key}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith("env:"):
        var = node[4:]
        if var not in env or env[var] == "":
            problems.append(f"{key}: environment variable {var} is not set")
            return None
        return env[var]
    return node


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before")):
            continue
        else:
            out += ("." if out else "") + part
    return out


def parse_config(data: dict[str, Any], base_dir: Path, env: dict[str, str] | None = None) -> Config:
    """Validate a config mapping; raises ConfigError with every problem found."""
    if (where := _too_deep(data)) is not None:
        raise ConfigError([f"{where or '(top level)'}: nested deeper than {MAX_DEPTH} levels"])
    problems: list[str] = []
    resolved = _resolve_env(data, "", dict(os.environ) if env is None else env, problems)
    missing = {p.split(":")[0] for p in problems}
    try:
        config = Config.model_validate({**resolved, "base_dir": base_dir})
    except ValidationError as exc:
        for err in exc.errors():
            key = _loc(err["loc"]) or "(top level)"
            if key in missing:
                continue  # already reported as a missing environment variable
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{key}: {msg}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    stores = dict(config.stores)
    for name, store in config.stores.items():
        if store.routing.sku_map_csv:
            try:
                table = read_sku_map_csv(config.path(store.routing.sku_map_csv))
            except ConfigError as exc:
                problems += [f"stores.{name}.routing.sku_map_csv: {p}" for p in exc.problems]
            else:
                routing = store.routing.model_copy(update={"sku_map": {**table, **store.routing.sku_map}})
                stores[name] = store.model_copy(update={"routing": routing})
    for name, store in stores.items():
        unmapped = sorted(set(store.inventory.buffers) - set(store.routing.sku_map))
        if unmapped:
            problems.append(f"stores.{name}.inventory.buffers: {unmapped} not in sku_map/sku_map_csv; "
                            "buffers are per store SKU mapped to Amazon")
        # Read once, here (and again on a reload): a label never waits on, or fails at, a file.
        update: dict[str, Any] = {}
        if store.parcels_csv:
            try:
                update["parcels"] = {**read_parcels_csv(config.path(store.parcels_csv)), **store.parcels}
            except ConfigError as exc:
                problems += [f"stores.{name}.parcels_csv: {p}" for p in exc.problems]
        if store.customs_items_csv:
            try:
                update["customs_items"] = {**read_customs_items_csv(config.path(store.customs_items_csv)),
                                           **store.customs_items}
            except ConfigError as exc:
                problems += [f"stores.{name}.customs_items_csv: {p}" for p in exc.problems]
        stores[name] = store.model_copy(update=update) if update else store
    if problems:
        raise ConfigError(problems)
    return config.model_copy(update={"stores": stores})


def _too_deep(data: Any) -> str | None:
    """The key where ``data`` nests deeper than MAX_DEPTH, else None (walked without recursion)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            return key
        if isinstance(node, dict):
            stack += [(v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, f"{key}[{i}]", depth + 1) for i, v in enumerate(node)]
    return None


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("AUTOFULFILL_CONFIG") or DEFAULT_CONFIG_NAME)


def load_config(path: Path, env: dict[str, str] | None = None) -> Config:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config ({exc.strerror}); "
                           "`autofulfill init` writes an example"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: nested deeper than {MAX_DEPTH} levels"]) from None
    return parse_config(data, path.resolve().parent, env)
