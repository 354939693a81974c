"""Pydantic models of the mapping document (codes catalog, people, rules) and its JSON Schema."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal, Self, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from connectors.model import Vocabulary

# The vocabulary a document is read with when none is given: ``sync`` installs the registry's.
_default_vocabulary: Callable[[], Vocabulary] = Vocabulary


def use_vocabulary(vocabulary: Vocabulary | Callable[[], Vocabulary]) -> None:
    """Set the vocabulary documents are read with by default (a value, or a function giving the current one)."""
    global _default_vocabulary
    if isinstance(vocabulary, Vocabulary):
        fixed = vocabulary
        _default_vocabulary = lambda: fixed  # noqa: E731  (a constant provider)
    else:
        _default_vocabulary = vocabulary


def current_vocabulary() -> Vocabulary:
    """The vocabulary documents are read with when the caller names none."""
    return _default_vocabulary()


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

_TEXT_OR_ID_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
_STR_LIST_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "integer"},
        {"type": "array", "items": _TEXT_OR_ID_SCHEMA, "minItems": 1},
    ]
}


def _as_text(value: Any) -> Any:
    # YAML reads unquoted ids such as 1200001 as integers; they are ids, so keep their digits as text.
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a yes/no value here; write the text in quotes")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"{value!r} is read as a decimal number; write it in quotes to keep every digit")
    return value


def _as_text_list(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise ValueError("give at least one value (a text or a list of texts)")
        return [_as_text(item) for item in value]
    return [_as_text(value)]


StrList = Annotated[list[Text], BeforeValidator(_as_text_list), WithJsonSchema(_STR_LIST_SCHEMA)]
TextOrId = Annotated[Text, BeforeValidator(_as_text), WithJsonSchema(_TEXT_OR_ID_SCHEMA)]


def _source_list(sources: tuple[str, ...]) -> Any:
    """A ``source`` value: one name or a list of names, published with the registered names as its enum."""
    one: dict[str, Any] = {"type": "string", "enum": list(sources)}
    return Annotated[
        list[Text],
        BeforeValidator(_as_text_list),
        WithJsonSchema({"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}),
    ]


# The static base's ``source``; ``document_model`` replaces it with one that publishes the names.
SourceList = Annotated[list[Text], BeforeValidator(_as_text_list)]


def _as_money(value: Any) -> Any:
    # Money is Decimal end to end; a YAML float has already lost digits, so ask for quotes instead.
    if isinstance(value, bool | float):
        raise ValueError(f'write the amount in quotes, like "95.00", so no digits are lost (got {value!r})')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f'{value!r} is not an amount; write it like "95.00"') from None
        if not amount.is_finite():
            raise ValueError(f'{value!r} is not an amount; write it like "95.00"')
        return amount
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_as_money),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*$"}, {"type": "integer", "minimum": 0}]}
    ),
]


def _source_name(value: str, vocabulary: Vocabulary) -> str:
    name = value.strip().lower()
    if name not in vocabulary.sources:
        raise ValueError(f"unknown source {value!r}; use one of {', '.join(vocabulary.sources)}")
    return name


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def join_path(path: str, key: object) -> str:
    """The path of ``key`` under ``path``, as messages show it: ``rules[2].match.custom_field["Phase"]``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    text = str(key)
    if _SIMPLE_KEY.match(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def nearest_line(lines: dict[str, int], path: str) -> int:
    """Line of ``path`` or of its nearest written parent; 0 when none was recorded."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return lines.get("", 0)


def normalize_name(text: str) -> str:
    """How names compare everywhere in mappings: exact, case-insensitive, surrounding whitespace ignored."""
    # NFC first so a composed "ë" and an "e" + combining diaeresis from another tool compare equal.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).strip().casefold())


class _Model(BaseModel):
    # extra="forbid" turns a typo in a key into an error that names the line, instead of a silent no-op.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # The vocabulary the model was built for (see ``document_model``); empty on the static bases.
    vocabulary: ClassVar[Vocabulary] = Vocabulary()


class Rate(_Model):
    """A billing rate of one code for a period of work dates."""

    rate: Money = Field(ge=0)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code in capitals, e.g. USD"
    )
    effective_from: date
    effective_to: date | None = Field(default=None, description="Last day (inclusive); empty = open-ended")

    @model_validator(mode="after")
    def _period_in_order(self) -> Rate:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(f"effective_to {self.effective_to} is before effective_from {self.effective_from}")
        return self


class QuickBooksRefs(_Model):
    """Names of the QuickBooks records a code's lines are booked against."""

    customer: Text | None = None
    item: Text | None = None
    class_: Text | None = Field(default=None, alias="class")
    department: Text | None = None


class XeroRefs(_Model):
    """Names of the Xero records a code's lines are booked against."""

    contact: Text | None = Field(default=None, description="The client's contact (bills go to the contractor's)")
    account: Text | None = Field(default=None, description="Account code of bill lines, e.g. 200")
    tax_type: Text | None = Field(default=None, description="Tax type of bill lines, e.g. INPUT")
    tracking: dict[Text, Text] = Field(default_factory=dict, description="tracking category -> option")
    project: Text | None = Field(default=None, description="Xero project (name or id) for project time entries")
    task: Text | None = Field(default=None, description="Task of that project (name or id)")


class Code(_Model):
    """One project code in the catalog: who pays, which cost center, how it is billed."""

    name: Text
    client: Text
    cost_center: TextOrId
    billable: StrictBool = Field(description="Default for entries whose source does not say")
    active_from: date | None = None
    active_to: date | None = None
    rates: list[Rate] = Field(default_factory=list)
    quickbooks: QuickBooksRefs | None = None
    xero: XeroRefs | None = None

    @model_validator(mode="after")
    def _active_in_order(self) -> Code:
        if self.active_from is not None and self.active_to is not None and self.active_to < self.active_from:
            raise ValueError(f"active_to {self.active_to} is before active_from {self.active_from}")
        return self

    def active_on(self, day: date) -> bool:
        return (self.active_from is None or day >= self.active_from) and (
            self.active_to is None or day <= self.active_to
        )


def _person_id(value: Any, vocabulary: Vocabulary) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f'{value!r} is not a person id; write it as "source:id", e.g. "asana:1200001"')
    source, _, ident = value.partition(":")
    if not ident.strip():
        raise ValueError(f'{value!r} has no id after the colon; write it as "source:id"')
    return f"{_source_name(source, vocabulary)}:{ident.strip()}"


def _person_id_type(vocabulary: Vocabulary) -> Any:
    """A "source:id" text whose source is a word of ``vocabulary``."""
    return Annotated[
        str,
        BeforeValidator(lambda value: _person_id(value, vocabulary)),
        WithJsonSchema({"type": "string", "pattern": "^[a-z]+:.+$"}),
    ]


# The static base's ids; ``document_model`` replaces the type with one that checks the sources.
PersonId = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^[a-z]+:.+$"})]


class PersonMapping(_Model):
    """Ties PM-tool identities (email, source ids) to one contractor and their accounting records."""

    contractor: Text
    email: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    ids: list[PersonId] = Field(default_factory=list, description='"source:id", e.g. "asana:1200001"')
    quickbooks_vendor: Text | None = None
    xero_contact: Text | None = None
    rates: list[Rate] = Field(
        default_factory=list,
        description="The contractor's agreed hourly rates by work date: what their bills should charge per hour",
    )

    @model_validator(mode="after")
    def _identified(self) -> PersonMapping:
        if self.email is None and not self.ids:
            raise ValueError(f"contractor {self.contractor!r} needs an email or at least one id to be matched")
        return self

    @model_validator(mode="after")
    def _rates_apart(self) -> PersonMapping:
        ordered = sorted(self.rates, key=lambda r: r.effective_from)
        for before, after in zip(ordered, ordered[1:], strict=False):  # noqa: RUF007  (itertools is not among the pure engine's imports)
            if before.effective_to is None or before.effective_to >= after.effective_from:
                raise ValueError(
                    f"contractor {self.contractor!r} has rates whose dates overlap "
                    f"({before.effective_from} and {after.effective_from}); end the earlier one the day before"
                )
        return self

    def rate_on(self, day: date) -> Rate | None:
        """The agreed rate in effect on ``day``, or None."""
        for rate in self.rates:
            if rate.effective_from <= day and (rate.effective_to is None or day <= rate.effective_to):
                return rate
        return None


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable task-name glob, or None when it is fine."""
    index = 0
    while index < len(pattern):
        if pattern[index] == "[":
            # fnmatch reads "[!]...]" and "[]...]" with the first "]" as a literal member.
            end = index + 1
            if end < len(pattern) and pattern[end] == "!":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            close = pattern.find("]", end)
            if close == -1:
                return f"unbalanced '[' in glob {pattern!r}; close it with ']' or write '[[]' for a literal '['"
            index = close + 1
        else:
            index += 1
    return None


class RuleMatch(_Model):
    """What an entry must look like for a rule to apply: every key given must match (AND)."""

    source: SourceList | None = None
    workspace: StrList | None = None
    # One field per container kind of the vocabulary (project, list, board...) follows here: see
    # ``document_model``, which adds them, so a new source's kinds need no edit of this class.
    tag: StrList | None = None
    custom_field: dict[Text, StrList] | None = Field(
        default=None, description="task custom field name -> value (or list of values)"
    )
    person: StrList | None = Field(default=None, description="person id, email, or contractor name")
    task_name: StrList | None = Field(default=None, description="glob, case-insensitive: * ? [abc]")
    billable: StrictBool | None = None

    @field_validator("source")
    @classmethod
    def _known_sources(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_source_name(item, cls.vocabulary) for item in value]

    @field_validator("task_name")
    @classmethod
    def _valid_globs(cls, value: list[str] | None) -> list[str] | None:
        for pattern in value or ():
            problem = glob_problem(pattern)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("custom_field")
    @classmethod
    def _some_fields(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is not None and not value:
            raise ValueError("name at least one custom field, or remove the key")
        return value

    def containers(self) -> dict[str, list[str]]:
        """Container kind -> accepted ids/names, for the kinds this match names."""
        found: dict[str, list[str]] = {}
        for kind in self.vocabulary.container_keys:
            values: list[str] | None = getattr(self, _container_field(kind))
            if values is not None:
                found[kind] = values
        return found


class Rule(_Model):
    """Entries matching ``match`` get ``code`` (or the code named by a task custom field)."""

    id: Text
    priority: StrictInt = Field(description="Higher wins; ties go to the rule written first")
    code: TextOrId | None = None
    code_from_custom_field: Text | None = Field(
        default=None, description="Take the code from this task custom field's value"
    )
    effective_from: date | None = None
    effective_to: date | None = None
    note: str | None = Field(default=None, description="Why the rule exists, for the next admin")
    match: RuleMatch = Field(default_factory=RuleMatch)

    @model_validator(mode="after")
    def _one_code_source(self) -> Rule:
        if (self.code is None) == (self.code_from_custom_field is None):
            raise ValueError("give exactly one of 'code' or 'code_from_custom_field'")
        if (
            self.effective_from is not None
            and self.effective_to is not None
            and self.effective_to < self.effective_from
        ):
            raise ValueError(f"effective_to {self.effective_to} is before effective_from {self.effective_from}")
        return self

    def effective_on(self, day: date) -> bool:
        return (self.effective_from is None or day >= self.effective_from) and (
            self.effective_to is None or day <= self.effective_to
        )


class MappingDocument(_Model):
    """The whole document an admin edits: codes catalog, people, rules."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="hourbridge mapping document",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1]
    codes: dict[TextOrId, Code] = Field(default_factory=dict)
    people: list[PersonMapping] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    # The model of a rule's ``match`` in this document model (with the vocabulary's container keys).
    match_model: ClassVar[type[RuleMatch]] = RuleMatch
    # Where each part was written ("rules[3]" -> 41), for messages; not part of the document's value.
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        """Validate ``obj``; on this static base, with the model of the installed vocabulary."""
        if cls is MappingDocument:
            return cast(Self, document_model().model_validate(obj, **options))
        return super().model_validate(obj, **options)

    @property
    def lines(self) -> dict[str, int]:
        return dict(self._lines)

    def with_lines(self, lines: dict[str, int]) -> MappingDocument:
        """The same document carrying the YAML line of each path."""
        copy = self.model_copy()
        copy._lines = dict(lines)
        return copy

    def line_of(self, path: str) -> int:
        """Line of ``path`` or of its nearest written parent; 0 when the document was not read from text."""
        return nearest_line(self._lines, path)

    def canonical_json(self) -> str:
        """The document's value as canonical JSON: same rules, same text, whatever the YAML layout."""
        return json.dumps(
            self.model_dump(mode="json", by_alias=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MappingDocument):
            return NotImplemented
        return self.canonical_json() == other.canonical_json()

    def __hash__(self) -> int:
        return hash(self.canonical_json())


def json_schema(vocabulary: Vocabulary | None = None) -> dict[str, Any]:
    """JSON Schema of the mapping document, for editors that validate YAML as it is typed."""
    return document_model(vocabulary).model_json_schema(by_alias=True, mode="validation")


def json_schema_text(vocabulary: Vocabulary | None = None) -> str:
    """The JSON Schema as deterministic text (sorted keys, trailing newline), as published."""
    return json.dumps(json_schema(vocabulary), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _container_field(kind: str) -> str:
    """The attribute a container kind is stored under (``list`` would shadow the builtin: ``list_``)."""
    return f"{kind}_" if kind in ("list", "dict", "set", "type") or hasattr(BaseModel, kind) else kind


_DOCUMENT_MODELS: dict[Vocabulary, type[MappingDocument]] = {}


def document_model(vocabulary: Vocabulary | None = None) -> type[MappingDocument]:
    """The document model for ``vocabulary`` (default: the installed one): its sources and container keys.

    A subclass of ``MappingDocument`` whose rules' ``match`` has one key per container kind and whose
    ``source`` and person ids accept exactly the vocabulary's sources; built once per vocabulary.
    """
    vocabulary = current_vocabulary() if vocabulary is None else vocabulary
    model = _DOCUMENT_MODELS.get(vocabulary)
    if model is not None:
        return model
    # Field definitions as plain dicts: create_model's overloads cannot type per-vocabulary fields.
    fields: dict[str, Any] = {
        _container_field(kind): (StrList | None, Field(default=None, alias=kind)) for kind in vocabulary.container_keys
    }
    fields["source"] = (_source_list(vocabulary.sources) | None, None)
    match = create_model("RuleMatch", __base__=RuleMatch, __doc__=RuleMatch.__doc__, __module__=__name__, **fields)
    fields = {"match": (match, Field(default_factory=match))}
    rule = create_model("Rule", __base__=Rule, __doc__=Rule.__doc__, __module__=__name__, **fields)
    person_id: Any = _person_id_type(vocabulary)
    ids: Any = Field(default_factory=list, description='"source:id", e.g. "asana:1200001"')
    fields = {"ids": (list[person_id], ids)}
    person = create_model(
        "PersonMapping", __base__=PersonMapping, __doc__=PersonMapping.__doc__, __module__=__name__, **fields
    )
    people: Any = list[person]
    rules: Any = list[rule]
    fields = {"people": (people, Field(default_factory=list)), "rules": (rules, Field(default_factory=list))}
    model = create_model(
        "MappingDocument", __base__=MappingDocument, __doc__=MappingDocument.__doc__, __module__=__name__, **fields
    )
    for built in (match, rule, person, model):
        built.vocabulary = vocabulary
    model.match_model = match
    _DOCUMENT_MODELS[vocabulary] = model
    return model
