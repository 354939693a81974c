"""Review a mapping document for mistakes that load fine: overlapping rates, unreachable or ambiguous rules."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from connectors.model import Vocabulary
from mappings.engine import SOURCE, CompiledRule, Matcher
from mappings.loader import MappingDocumentError, validate_references
from mappings.schema import MappingDocument, Rate, join_path, normalize_name


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing worth an admin's look: an error blocks trust in the numbers, a warning is likely a slip."""

    level: Literal["error", "warning"]
    rule_id: str | None
    message: str
    line: int


def check_document(doc: MappingDocument) -> list[Finding]:
    """Every finding for ``doc``: errors first, then warnings, each group in document order."""
    findings: list[Finding] = []
    try:
        validate_references(doc)
    except MappingDocumentError as exc:
        # A document built without the loader can still name unknown codes; rules cannot be analysed then.
        findings.extend(Finding("error", None, problem.message, problem.line) for problem in exc.problems)
        findings.extend(_rate_overlaps(doc))
        return _ordered(findings)
    findings.extend(_rate_overlaps(doc))
    matcher = Matcher(doc)
    shadowed = _shadowed_rules(doc, matcher)
    findings.extend(finding for finding, _rank in shadowed)
    findings.extend(_equal_priority_overlaps(matcher, {rank for _finding, rank in shadowed}))
    findings.extend(_rules_outside_code_period(doc, matcher))
    return _ordered(findings)


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda finding: (finding.level != "error", finding.line))


def _rate_overlaps(doc: MappingDocument) -> list[Finding]:
    findings: list[Finding] = []
    for code_key, code in doc.codes.items():
        rates = sorted(enumerate(code.rates), key=lambda item: (item[1].effective_from, item[0]))
        # The rate reaching furthest so far; any later-starting rate that begins before it ends overlaps it.
        reach: tuple[int, Rate] | None = None
        for index, rate in rates:
            if reach is not None:
                first_index, first = reach
                if first.effective_to is None or rate.effective_from <= first.effective_to:
                    findings.append(_rate_overlap(doc, code_key, first_index, first, index, rate))
            if reach is None or _ends_later(rate, reach[1]):
                reach = (index, rate)
    return findings


def _ends_later(rate: Rate, other: Rate) -> bool:
    if other.effective_to is None:
        return False
    return rate.effective_to is None or rate.effective_to > other.effective_to


def _rate_overlap(
    doc: MappingDocument, code_key: str, first_index: int, first: Rate, index: int, rate: Rate
) -> Finding:
    path = join_path(join_path(join_path("codes", code_key), "rates"), index)
    end = "open-ended" if first.effective_to is None else f"until {first.effective_to}"
    if first.effective_from < rate.effective_from:
        fix = f"set effective_to: {rate.effective_from - timedelta(days=1)} on rates[{first_index}]"
    else:
        fix = f"give rates[{index}] a later effective_from or remove one of them"
    return Finding(
        "error",
        None,
        f"code {code_key!r}: rates[{index}] (from {rate.effective_from}) overlaps rates[{first_index}] "
        f"(from {first.effective_from}, {end}), so a work date would have two rates; {fix}",
        doc.line_of(path),
    )


def _covers(wide: CompiledRule, narrow: CompiledRule) -> bool:
    """True when every entry ``narrow`` matches on its keys and dates, ``wide`` matches too."""
    for check in wide.checks:
        if not any(other.attr == check.attr and other.values <= check.values for other in narrow.checks):
            return False
    if wide.glob is not None:
        wide_globs = {normalize_name(glob) for glob in wide.globs}
        if "*" not in wide_globs and (
            not narrow.globs or not {normalize_name(glob) for glob in narrow.globs} <= wide_globs
        ):
            return False
    return _period_covers(wide.effective_from, wide.effective_to, narrow.effective_from, narrow.effective_to)


def _period_covers(from_a: date | None, to_a: date | None, from_b: date | None, to_b: date | None) -> bool:
    starts_first = from_a is None or (from_b is not None and from_a <= from_b)
    ends_last = to_a is None or (to_b is not None and to_a >= to_b)
    return starts_first and ends_last


def _periods_meet(from_a: date | None, to_a: date | None, from_b: date | None, to_b: date | None) -> bool:
    return (to_a is None or from_b is None or from_b <= to_a) and (to_b is None or from_a is None or from_a <= to_b)


def _shadowed_rules(doc: MappingDocument, matcher: Matcher) -> list[tuple[Finding, int]]:
    """(warning, rank) for each rule an earlier-ranked, wider rule makes unreachable."""
    found: list[tuple[Finding, int]] = []
    for narrow in matcher.rules:
        pairs = [(check.attr, check.values) for check in narrow.checks + narrow.index_keys]
        for rank in matcher.indexed_under(pairs):
            if rank >= narrow.rank:
                break
            wide = matcher.rules[rank]
            # A rule taking its code from a custom field steps aside when the value is unknown: no shadow.
            if wide.code is None or not _covers(wide, narrow):
                continue
            same = "the same priority and is written first" if wide.priority == narrow.priority else "a higher priority"
            found.append(
                (
                    Finding(
                        "warning",
                        narrow.id,
                        f"rule {narrow.id!r} can never apply: rule {wide.id!r}{_at(wide)} matches every entry it "
                        f"matches and has {same}; remove {narrow.id!r}, narrow {wide.id!r}, "
                        f"or give {narrow.id!r} a higher priority",
                        narrow.line,
                    ),
                    narrow.rank,
                )
            )
            break
    return found


def _equal_priority_overlaps(matcher: Matcher, shadowed: set[int]) -> list[Finding]:
    """One warning per rule that can lose a tie to an earlier rule of its priority (not for unreachable rules)."""
    findings: list[Finding] = []
    groups: dict[int, list[CompiledRule]] = defaultdict(list)
    for rule in matcher.rules:
        groups[rule.priority].append(rule)
    for rules in groups.values():
        if len(rules) < 2:
            continue
        # Two rules can meet only when, for every key the later one has, the earlier one lacks that
        # key or shares a value of it. Ranks of one priority are consecutive, in document order.
        having: dict[tuple[int, str], dict[Any, set[int]]] = defaultdict(lambda: defaultdict(set))
        keyed: dict[tuple[int, str], set[int]] = defaultdict(set)
        for rule in rules:
            for check in rule.checks:
                key = (check.attr, normalize_name(check.field))
                keyed[key].add(rule.rank)
                for value in check.values:
                    having[key][value].add(rule.rank)
        group = {rule.rank for rule in rules}
        lacking = {key: group - ranks for key, ranks in keyed.items()}
        first_rank = rules[0].rank
        for later in rules:
            if later.rank in shadowed:
                continue
            possible = set(range(first_rank, later.rank)) - shadowed
            for check in later.checks:
                key = (check.attr, normalize_name(check.field))
                sharing = set().union(*(having[key].get(value, ()) for value in check.values))
                possible &= lacking[key] | sharing
                if not possible:
                    break
            ordered = sorted(possible)
            for position, rank in enumerate(ordered):
                earlier = matcher.rules[rank]
                if _can_meet(earlier, later, matcher.document.vocabulary):
                    findings.append(_tie_warning(earlier, later, len(ordered) - position - 1))
                    break
    return findings


def _tie_warning(earlier: CompiledRule, later: CompiledRule, others: int) -> Finding:
    more = f" (and up to {others} other rule(s) of this priority)" if others else ""
    return Finding(
        "warning",
        later.id,
        f"rules {earlier.id!r}{_at(earlier)} and {later.id!r} have the same priority ({later.priority}) and can "
        f"match the same entry{more}; {earlier.id!r} wins because it is written first: give one of them a "
        "higher priority or narrow their match",
        later.line,
    )


def _can_meet(one: CompiledRule, other: CompiledRule, vocabulary: Vocabulary) -> bool:
    """False when no entry can satisfy both rules' keys and dates (the exact keys are checked by the caller)."""
    if not _periods_meet(one.effective_from, one.effective_to, other.effective_from, other.effective_to):
        return False
    if not _sources(one, vocabulary) & _sources(other, vocabulary):
        return False
    if one.globs and other.globs:
        return any(_globs_may_meet(normalize_name(a), normalize_name(b)) for a in one.globs for b in other.globs)
    return True


def _sources(rule: CompiledRule, vocabulary: Vocabulary) -> set[str]:
    """The sources an entry matching ``rule`` can come from: a container kind belongs to certain tools,
    so rules naming kinds of different tools never meet one entry."""
    sources = set(vocabulary.sources)
    kinds = set(vocabulary.container_keys)
    for check in rule.checks:
        if check.attr == SOURCE:
            sources &= set(check.values)
        elif check.label in kinds:
            sources &= vocabulary.sources_of(check.label)
    return sources


def _globs_may_meet(one: str, other: str) -> bool:
    """A cheap necessary condition for two globs to share a match: compatible literal starts and ends."""

    def literal_start(glob: str) -> str:
        for position, char in enumerate(glob):
            if char in "*?[":
                return glob[:position]
        return glob

    def literal_end(glob: str) -> str:
        for position in range(len(glob) - 1, -1, -1):
            if glob[position] in "*?]":
                return glob[position + 1 :]
        return glob

    start_a, start_b = literal_start(one), literal_start(other)
    end_a, end_b = literal_end(one), literal_end(other)
    return (start_a.startswith(start_b) or start_b.startswith(start_a)) and (
        end_a.endswith(end_b) or end_b.endswith(end_a)
    )


def _rules_outside_code_period(doc: MappingDocument, matcher: Matcher) -> list[Finding]:
    findings: list[Finding] = []
    for rule in matcher.rules:
        if rule.code is None:
            continue
        code = doc.codes[rule.code]
        if not _periods_meet(rule.effective_from, rule.effective_to, code.active_from, code.active_to):
            findings.append(
                Finding(
                    "warning",
                    rule.id,
                    f"rule {rule.id!r} is effective only while code {rule.code!r} is inactive, so every entry it "
                    "matches stays unmapped; align the rule's effective dates with the code's active dates",
                    rule.line,
                )
            )
    return findings


def _at(rule: CompiledRule) -> str:
    return f" (line {rule.line})" if rule.line else ""
