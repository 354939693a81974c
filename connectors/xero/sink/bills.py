"""XeroBillsSink: delivery ops as lines of draft ACCPAY bills, one bill per payee and period, keyed by call."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from connectors._config import TokenSource
from connectors._paging import PageNumbers
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors.delivery import (
    REF_XERO_ACCOUNT,
    REF_XERO_CONTACT,
    REF_XERO_TAX_TYPE,
    REF_XERO_TRACKING_1,
    REF_XERO_TRACKING_2,
    Holding,
    Line,
    Now,
    Op,
    OpKind,
    Receipt,
    call_key,
    encode_json,
    failed,
    idempotency_key,
    marked_keys,
    marker,
    ok,
    unknown,
    utc_now,
)
from connectors.errors import (
    ConfigError,
    CredentialRefused,
    DailyLimitError,
    OutcomeUnknown,
    TransientError,
    XeroRefused,
)
from connectors.xero.client import VENDOR, is_uuid, validation_messages, where_names
from connectors.xero.config import XeroConfig
from connectors.xero.render import BillIds, bill_number, money, render_bill, render_line_item, written_work_date
from connectors.xero.sink.base import XeroSink, split_remote

# Contacts named in one where filter: the filter travels in the URL.
CONTACTS_PER_QUERY = 20
INVOICE_LOOKUP_CHUNK = 50
# Xero Accounting: a paged invoice list answers up to 100 invoices (with their line items) per page.
INVOICES_PER_PAGE = 100
# Only draft (and submitted) bills may be edited or deleted; approved ones need an adjustment.
EDITABLE = ("DRAFT", "SUBMITTED")
GONE = ("DELETED", "VOIDED")
BILL_PARAMS = {"summarizeErrors": "false", "unitdp": "4"}
UNIT_PLACES = Decimal("0.0001")


@dataclass(slots=True)
class _BillWork:
    """One bill to write in this push: its current state in Xero (if any) and the ops that change it."""

    number: str
    line: Line
    ids: BillIds
    existing: Mapping[str, Any] | None
    ops: list[tuple[Op, dict[str, Any] | None]] = field(default_factory=list)


class XeroBillsSink(XeroSink, mode="bills"):
    """Writes time to one Xero organisation as line items of draft ACCPAY bills."""

    def __init__(
        self,
        config: XeroConfig,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        limiter: RateLimiter | None = None,
        now: Now = utc_now,
    ) -> None:
        super().__init__(config, token=token, transport=transport, sleep=sleep, limiter=limiter, now=now)
        self._contacts: dict[str, str | None] = {}
        self._tracking: dict[str, dict[str, str]] | None = None

    def check(self) -> None:
        self.client.call("accounting", "GET", "/TrackingCategories")

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        yield from self._push_bills(list(ops))

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        """The bill with our InvoiceNumber for the line, and its line item carrying the marker."""
        return self._find_bill_line(idempotency_key, line, kind)

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        """The bill lines carrying any of ``keys``: the bills the lines name, read by InvoiceNumbers (50 a call)."""
        wanted = set(keys)
        numbers = [bill_number(line, self._contact_name(line)) for line in lines]
        found: dict[str, Receipt] = {}
        for bill in self._lookup_bills("InvoiceNumbers", numbers):
            if bill.get("Status") in GONE:
                continue
            for item in bill.get("LineItems") or []:
                if not isinstance(item, Mapping):
                    continue
                description = item.get("Description")
                for key in marked_keys(description if isinstance(description, str) else None):
                    if key in wanted and key not in found:
                        remote = f"{bill.get('InvoiceID')}/{item.get('LineItemID')}"
                        found[key] = Receipt(key, "create", "ok", remote, None, self._now())
        return found

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        """Every bill line dated ``start..end`` (inclusive) that carries our marker.

        The bills ``bill_number`` names for the ``lines``, looked up by InvoiceNumbers (DELETED and
        VOIDED ones skipped). Each line item with a marker is one holding: minutes are its Quantity
        (hours) times 60, rounded half-up; ``work_date`` is the ``work_date`` of the line in
        ``lines`` whose op wrote the marker, else the work date render wrote into the item's
        description, else (an item edited by hand, or written for a line not in ``lines``) the
        bill's date, which is its period end. Items whose ``work_date`` falls outside the range are
        left out. The key of a holding is the first marker of the text (render writes exactly one,
        at its head).
        """
        if end < start:
            return
        yield from self._bill_holdings(start, end, lines)

    def _contact_name(self, line: Line) -> str:
        return line.ref(REF_XERO_CONTACT) or line.payee

    def _prefetch_contacts(self, lines: Sequence[Line]) -> None:
        names = sorted({n for n in map(self._contact_name, lines) if not is_uuid(n) and n not in self._contacts})
        for start in range(0, len(names), CONTACTS_PER_QUERY):
            chunk = names[start : start + CONTACTS_PER_QUERY]
            payload = self.client.call(
                "accounting", "GET", "/Contacts", params={"where": where_names("Name", chunk), "summaryOnly": "true"}
            )
            found: dict[str, str] = {}
            for contact in (payload or {}).get("Contacts") or []:
                if isinstance(contact, Mapping) and isinstance(contact.get("Name"), str):
                    found.setdefault(contact["Name"].casefold(), str(contact.get("ContactID")))
            for name in chunk:
                self._contacts[name] = found.get(name.casefold())

    def _tracking_options(self) -> dict[str, dict[str, str]]:
        if self._tracking is None:
            payload = self.client.call("accounting", "GET", "/TrackingCategories")
            categories: dict[str, dict[str, str]] = {}
            for category in (payload or {}).get("TrackingCategories") or []:
                if not isinstance(category, Mapping) or category.get("Status", "ACTIVE") != "ACTIVE":
                    continue
                options = {
                    str(o.get("Name")).casefold(): str(o.get("Name"))
                    for o in category.get("Options") or []
                    if isinstance(o, Mapping) and o.get("Status", "ACTIVE") == "ACTIVE"
                }
                categories[str(category.get("Name")).casefold()] = options
            self._tracking = categories
        return self._tracking

    def bill_ids(self, line: Line) -> BillIds:
        """Contact id, account code and tracking of a bill line; ConfigError naming what is missing."""
        code = f"the mapping document's code '{line.code}'"
        contact = self._contact_name(line)
        if is_uuid(contact):
            contact_id: str | None = contact
        else:
            if contact not in self._contacts:
                self._prefetch_contacts([line])
            contact_id = self._contacts.get(contact)
        problems: list[str] = []
        if contact_id is None:
            problems.append(
                f"no contact named '{contact}' (from the mapping document's people entry of '{line.person}')"
            )
        account = line.ref(REF_XERO_ACCOUNT)
        if account is None:
            problems.append(f"no account code for {code} (set its xero account)")
        tracking: list[tuple[str, str]] = []
        for index, category in enumerate(self.config.tracking_categories):
            option = line.ref(REF_XERO_TRACKING_1 if index == 0 else REF_XERO_TRACKING_2)
            if option is None and index == 0:
                option = line.cost_center
            if option is None:
                continue
            options = self._tracking_options().get(category.casefold())
            if options is None:
                problems.append(f"no active tracking category '{category}' (from HOURBRIDGE_XERO__TRACKING_CATEGORIES)")
            elif option.casefold() not in options:
                problems.append(f"no option '{option}' in tracking category '{category}' (from {code})")
            else:
                tracking.append((category, options[option.casefold()]))
        if problems:
            raise ConfigError(
                "Xero has " + "; ".join(problems) + ". Create it in Xero or correct the mapping document."
            )
        return BillIds(str(contact_id), str(account), tuple(tracking), line.ref(REF_XERO_TAX_TYPE))

    def _lookup_bills(self, param: str, values: Sequence[str]) -> list[Mapping[str, Any]]:
        bills: list[Mapping[str, Any]] = []
        seen: set[str] = set()
        ordered = sorted(set(values))
        for start in range(0, len(ordered), INVOICE_LOOKUP_CHUNK):
            listed = ",".join(ordered[start : start + INVOICE_LOOKUP_CHUNK])
            paging = PageNumbers(VENDOR, f"the bills by {param}", first=1)
            while not paging.done:
                # Xero: asking for a page is what makes the list include line items.
                params = {param: listed, "page": str(paging.number), "unitdp": "4"}
                payload = self.client.call("accounting", "GET", "/Invoices", params=params)
                found = [b for b in (payload or {}).get("Invoices") or [] if isinstance(b, Mapping)]
                fresh = [b for b in found if str(b.get("InvoiceID")) not in seen]
                seen.update(str(b.get("InvoiceID")) for b in fresh)
                bills.extend(fresh)
                pagination = (payload or {}).get("pagination")
                count = pagination.get("pageCount") if isinstance(pagination, Mapping) else None
                more = paging.number < count if isinstance(count, int) else len(found) >= INVOICES_PER_PAGE
                # A page of nothing new means the paging went nowhere: it ends here, quietly, since
                # every bill it could name is already in hand.
                paging.advance(last=not more or not fresh)
        return bills

    def _push_bills(self, ops: list[Op]) -> Iterator[Receipt]:
        live = [op for op in ops if op.kind != "delete"]
        self._prefetch_contacts([op.line for op in live])
        works: dict[str, _BillWork] = {}
        pending: list[tuple[Op, str, BillIds, dict[str, Any] | None]] = []
        for op in ops:
            try:
                ids = self.bill_ids(op.line) if op.kind != "delete" else BillIds("", "")
                item = None
                if op.kind != "delete":
                    item = render_line_item(
                        op.line, ids, key=op.idempotency_key, include_description=self.config.include_description
                    )
                number = bill_number(op.line, self._contact_name(op.line))
                pending.append((op, number, ids, item))
            except CredentialRefused:
                raise
            except (ConfigError, ValueError) as exc:
                yield failed(op, str(exc), self._now)
        # Find the bills these ops touch: creates by our InvoiceNumber, updates and deletes by InvoiceID.
        try:
            by_number = {
                str(b.get("InvoiceNumber")): b
                for b in self._lookup_bills("InvoiceNumbers", [n for op, n, _, _ in pending if op.kind == "create"])
                if b.get("Status") not in GONE
            }
            wanted_ids = {split_remote(str(op.remote_id))[0] for op, _, _, _ in pending if op.kind != "create"}
            by_id = {str(b.get("InvoiceID")): b for b in by_number.values()}
            by_id.update(
                (str(b.get("InvoiceID")), b)
                for b in self._lookup_bills("IDs", sorted(wanted_ids - set(by_id)))
                if b.get("Status") not in GONE
            )
        except (XeroRefused, DailyLimitError, TransientError, ValueError) as exc:
            for op, *_ in pending:
                yield failed(op, f"not sent: could not read the bills from Xero ({exc})", self._now)
            return
        for op, number, ids, item in pending:
            if op.kind == "create":
                existing = by_number.get(number)
                slot = str(existing.get("InvoiceID")) if existing else f"new:{number}"
            else:
                slot = split_remote(str(op.remote_id))[0]
                existing = by_id.get(slot)
                if existing is None:
                    if op.kind == "delete":
                        yield ok(op, self._now, remote_id=op.remote_id)  # the bill is already gone
                    else:
                        yield failed(op, "the bill this line was on is gone from Xero; plan a create", self._now)
                    continue
            work = works.get(slot)
            if work is None:
                work = works[slot] = _BillWork(number, op.line, ids, existing)
            elif op.kind != "delete" and not work.ids.contact_id:
                work.ids, work.line = ids, op.line
            work.ops.append((op, item))
        yield from self._write_bills(list(works.values()))

    def _write_bills(self, works: list[_BillWork]) -> Iterator[Receipt]:
        creates: list[tuple[_BillWork, dict[str, Any]]] = []
        updates: list[tuple[_BillWork, dict[str, Any]]] = []
        for work in works:
            done, invoice = self._plan_bill(work)
            yield from done
            if invoice is None:
                continue
            if work.existing is None:
                creates.append((work, invoice))
            else:
                updates.append((work, invoice))
        size = self.config.invoices_per_call
        for method, group in (("PUT", creates), ("POST", updates)):
            for start in range(0, len(group), size):
                yield from self._send_bills(method, group[start : start + size])

    def _plan_bill(self, work: _BillWork) -> tuple[list[Receipt], dict[str, Any] | None]:
        """Receipts of the ops that need no call, and the invoice to send for the rest (None: nothing to send).

        ``work.ops`` is left holding only the ops the invoice carries.
        """
        existing = work.existing
        if existing is not None and existing.get("Status") not in EDITABLE:
            status = existing.get("Status")
            message = f"bill {work.number} is {status} in Xero and cannot change; deliver an adjustment"
            return [failed(op, message, self._now) for op, _ in work.ops], None
        items: list[dict[str, Any]] = [
            dict(i) for i in (existing or {}).get("LineItems") or [] if isinstance(i, Mapping)
        ]
        done: list[Receipt] = []
        changed = False
        invoice_id = str(existing.get("InvoiceID")) if existing else None
        for op, item in work.ops:
            if op.kind == "create":
                mine = marker(op.idempotency_key)
                already = next((i for i in items if mine in str(i.get("Description", ""))), None)
                if already is not None:  # an earlier push landed; nothing to send for this op
                    done.append(ok(op, self._now, remote_id=f"{invoice_id}/{already.get('LineItemID')}"))
                    continue
                items.append(dict(item or {}))
                changed = True
                continue
            _, line_item_id = split_remote(str(op.remote_id))
            index = next((n for n, i in enumerate(items) if str(i.get("LineItemID")) == line_item_id), None)
            if index is None:
                if op.kind == "delete":
                    done.append(ok(op, self._now, remote_id=op.remote_id))
                else:
                    done.append(failed(op, f"bill {work.number} no longer has this line; plan a create", self._now))
                continue
            if op.kind == "delete":
                del items[index]
            else:
                items[index] = {**(item or {}), "LineItemID": line_item_id}
            changed = True
        settled = {r.idempotency_key for r in done}
        work.ops = [(op, item) for op, item in work.ops if op.idempotency_key not in settled]
        if not changed:
            return done, None
        if existing is not None and not items:
            # Xero: a draft bill is removed by setting its status to DELETED.
            return done, render_bill(
                work.line,
                work.ids,
                [],
                number=work.number,
                due_days=self.config.due_days,
                line_amount_types=self.config.line_amount_types,
                invoice_id=invoice_id,
                status="DELETED",
            )
        ids = work.ids if work.ids.contact_id else self._existing_ids(existing)
        return done, render_bill(
            work.line,
            ids,
            [_clean_item(i) for i in items],
            number=work.number,
            due_days=self.config.due_days,
            line_amount_types=self.config.line_amount_types,
            invoice_id=invoice_id,
            status=str(existing.get("Status", "DRAFT")) if existing else "DRAFT",
        )

    @staticmethod
    def _existing_ids(existing: Mapping[str, Any] | None) -> BillIds:
        contact = (existing or {}).get("Contact") or {}
        return BillIds(str(contact.get("ContactID", "")), "")

    def _send_bills(self, method: str, group: list[tuple[_BillWork, dict[str, Any]]]) -> Iterator[Receipt]:
        keys = [op.idempotency_key for work, _ in group for op, _ in work.ops]
        body = {"Invoices": [invoice for _, invoice in group]}
        try:
            payload = self.client.call(
                "accounting", method, "/Invoices", params=BILL_PARAMS, body=encode_json(body), key=call_key(keys)
            )
        except OutcomeUnknown as exc:
            for work, _ in group:
                for op, _ in work.ops:
                    yield unknown(op, exc.message, self._now)
            return
        except (XeroRefused, DailyLimitError) as exc:
            for work, _ in group:
                for op, _ in work.ops:
                    yield failed(op, exc.message, self._now)
            return
        except TransientError as exc:
            for work, _ in group:
                for op, _ in work.ops:
                    yield failed(op, f"not sent: {exc.message}; send it again later", self._now)
            return
        answers = {
            str(b.get("InvoiceNumber")): b for b in (payload or {}).get("Invoices") or [] if isinstance(b, Mapping)
        }
        for work, _ in group:
            answer = answers.get(work.number)
            for op, _ in work.ops:
                yield self._bill_receipt(op, answer)

    def _bill_receipt(self, op: Op, answer: Mapping[str, Any] | None) -> Receipt:
        if answer is None:
            return unknown(op, "Xero answered without this bill", self._now)
        errors = validation_messages(answer)
        if answer.get("HasErrors") or errors:
            return failed(op, "Xero refused the bill: " + ("; ".join(errors) or "no detail given"), self._now)
        invoice_id = str(answer.get("InvoiceID"))
        if op.kind == "delete":
            return ok(op, self._now, remote_id=op.remote_id)
        mine = marker(op.idempotency_key)
        for item in answer.get("LineItems") or []:
            if isinstance(item, Mapping) and mine in str(item.get("Description", "")):
                return ok(op, self._now, remote_id=f"{invoice_id}/{item.get('LineItemID')}")
        return unknown(op, "Xero answered the bill without this line", self._now)

    def _bill_holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        period_ends = {bill_number(line, self._contact_name(line)): line.period_end for line in lines}
        work_dates = {idempotency_key(line.sink, line.line_key, line.version): line.work_date for line in lines}
        for bill in self._lookup_bills("InvoiceNumbers", list(period_ends)):
            number = str(bill.get("InvoiceNumber"))
            if bill.get("Status") in GONE or number not in period_ends:
                continue
            for item in bill.get("LineItems") or []:
                if not isinstance(item, Mapping):
                    continue
                description = item.get("Description")
                text = description if isinstance(description, str) else None
                keys = marked_keys(text)
                if not keys:
                    continue
                work_date = work_dates.get(keys[0]) or written_work_date(text) or period_ends[number]
                if not start <= work_date <= end:
                    continue
                hours = money(item.get("Quantity")) or Decimal(0)
                minutes = int((hours * 60).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                remote = f"{bill.get('InvoiceID')}/{item.get('LineItemID')}"
                yield Holding(keys[0], remote, work_date, minutes)

    def _find_bill_line(self, key: str, line: Line, kind: OpKind) -> Receipt | None:
        number = bill_number(line, self._contact_name(line))
        mine = marker(key)
        for bill in self._lookup_bills("InvoiceNumbers", [number]):
            if bill.get("Status") in GONE:
                continue
            for item in bill.get("LineItems") or []:
                if isinstance(item, Mapping) and mine in str(item.get("Description", "")):
                    remote = f"{bill.get('InvoiceID')}/{item.get('LineItemID')}"
                    return Receipt(key, kind, "ok", remote, None, self._now())
        return None


_ITEM_FIELDS = ("LineItemID", "Description", "Quantity", "UnitAmount", "AccountCode", "TaxType", "Tracking")


def _clean_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The writable fields of a line item read back from Xero (amounts and ids Xero computes are dropped)."""
    out: dict[str, Any] = {k: item[k] for k in _ITEM_FIELDS if item.get(k) is not None}
    for amount in ("Quantity", "UnitAmount"):
        value = money(out.get(amount))
        if value is not None:
            # Read back through JSON, 1.5000 arrives as 1.5; unitdp=4 keeps four places on the way back.
            out[amount] = value.quantize(UNIT_PLACES)
    if "Tracking" in out:
        out["Tracking"] = [
            {"Name": t.get("Name"), "Option": t.get("Option")} for t in out["Tracking"] if isinstance(t, Mapping)
        ]
    return out
