"""The record contract: each field of an impression the ad API sends, what it must hold and
what it becomes. It is written here once, and everything that reads a record derives from it:

- the load's rules, with their reasons (`adpipe_load.impression_rules`, one rule per `Field`);
- the load's fast path: its msgspec struct and its column checks (`adpipe_load.fast_path`);
- the table's columns, their types, nullability and CHECK constraints (`adpipe.table`);
- the archive's Parquet schema, per schema version (`adpipe_archive.parquet_files`);
- ``make query``'s view (platform/query.py).

Adding a field the vendor starts sending is one entry below (``since`` the next `VERSION`,
``nullable``: the rows already loaded and the archive objects already written lack it) and
one migration adding its column as `Field.column_sql` renders it; docs/operations.md, "Add a
field", gives the steps and the test that takes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BIGINT_MAX = 2**63 - 1

# kind: (its type in PostgreSQL, its Arrow type in the archive's Parquet files)
KINDS = {
    "uuid": ("uuid", "uuid"),  # a string in canonical 8-4-4-4-12 hex form
    "integer": ("bigint", "int64"),  # a JSON integer, or a string of digits
    "text": ("text", "string"),  # a string of printable characters
    "timestamp": ("timestamptz", "timestamp"),  # RFC 3339 with a UTC offset
    "boolean": ("boolean", "bool"),  # true or false
}
# ISO 4217 active codes
CURRENCIES = frozenset(
    """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split()
)
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class Field:
    """One field of a record, as the API sends it and as the table stores it.

    Attributes:
        name: the JSON key, and the column's name.
        kind: one of `KINDS`: what the API sends and the types it is stored as.
        nullable: whether a record may leave it out or send null (stored as NULL).
        minimum, maximum: an integer's range, both ends allowed.
        max_length: a text's length in characters, at least one.
        pattern: a regular expression a text matches whole (printable ASCII only).
        allowed: the texts it may be, when a set says it better than a pattern.
        meaning: what ``pattern`` or ``allowed`` stand for, in a reason ("ISO 3166-1 alpha-2").
        postgres: its PostgreSQL type, when not the kind's (``char(2)``).
        window: the instant that places a record in its window (exactly one field).
        since: the contract's version that added it (`VERSION`).
    """

    name: str
    kind: str
    nullable: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    allowed: frozenset[str] | None = None
    meaning: str = ""
    postgres: str | None = None
    window: bool = False
    since: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: kind {self.kind!r} is not one of {sorted(KINDS)}")
        if self.kind == "uuid" and self.nullable:
            raise ValueError(f"field {self.name}: an id is never null")
        if self.kind == "text" and not self.max_length:
            raise ValueError(f"field {self.name}: a text needs its max_length")
        if (self.pattern or self.allowed) and not self.meaning:
            raise ValueError(f"field {self.name}: say what its pattern or set means")
        for value in self.allowed or ():
            if not _PRINTABLE_ASCII.fullmatch(value) or len(value) > (self.max_length or 0):
                raise ValueError(f"field {self.name}: {value!r} is not a short printable text")

    @property
    def postgres_type(self) -> str:
        return self.postgres or KINDS[self.kind][0]

    @property
    def arrow(self) -> str:
        return KINDS[self.kind][1]

    @property
    def low(self) -> int:
        """An integer's least value (a bigint's, unless the contract says more)."""
        return -BIGINT_MAX - 1 if self.minimum is None else self.minimum

    @property
    def high(self) -> int:
        return BIGINT_MAX if self.maximum is None else self.maximum

    def check_sql(self) -> str | None:
        """The CHECK the table holds for the field (None: its type says it all). Patterns and
        sets are the load's alone: a regular expression or a list of 180 codes on every row
        would cost the COPY more than the rest of the table's checks together."""
        bounds = []
        if self.kind == "integer":
            if self.minimum is not None:
                bounds.append(f"{self.name} >= {self.minimum}")
            if self.maximum is not None:
                bounds.append(f"{self.name} <= {self.maximum}")
        elif self.kind == "text" and self.postgres_type == "text":
            bounds.append(f"char_length({self.name}) BETWEEN 1 AND {self.max_length}")
        return " AND ".join(bounds) or None

    def column_sql(self) -> str:
        """The column as a migration declares it: type, NOT NULL, CHECK."""
        check = self.check_sql()
        return (
            f"{self.name} {self.postgres_type}"
            + ("" if self.nullable else " NOT NULL")
            + (f" CHECK ({check})" if check else "")
        )


def _id(name: str) -> Field:
    return Field(name, "integer", minimum=0)


def _label(name: str) -> Field:
    return Field(name, "text", max_length=64)


CONTRACT: tuple[Field, ...] = (
    Field("impression_id", "uuid"),
    _id("ad_id"),
    _id("campaign_id"),
    _id("advertiser_id"),
    _label("placement"),
    _label("device"),
    Field(
        "country",
        "text",
        max_length=64,
        pattern="[A-Z]{2}",
        meaning="ISO 3166-1 alpha-2",
        postgres="char(2)",
    ),
    Field("shown_at", "timestamp", window=True),
    Field("cost_micros", "integer", minimum=0),
    Field(
        "currency",
        "text",
        max_length=64,
        allowed=CURRENCIES,
        meaning="an ISO 4217 code",
        postgres="char(3)",
    ),
    Field("clicked", "boolean"),
)


def version(fields: tuple[Field, ...]) -> int:
    """The contract's version: the newest ``since`` among its fields."""
    return max(f.since for f in fields)


def window_field(fields: tuple[Field, ...]) -> Field:
    """The field whose instant places a record in its window (and the table's partition)."""
    (found,) = (f for f in fields if f.window)
    return found


VERSION = version(CONTRACT)
NAMES = tuple(f.name for f in CONTRACT)
WINDOW = window_field(CONTRACT)
