"""The demo payments API: a FastAPI app protected by ``corridor.resource``.

Routes (every one needs a sender-constrained access token whose ``aud`` is this API):

* ``GET /accounts`` (tool action ``list_accounts:read``): scope ``accounts``; the user's demo
  account and the payments accepted so far.
* ``POST /payments`` (tool action ``make_payment``): scope ``payments`` and a
  ``payment_initiation`` entry (RFC 9396). Whether this payment may go is decided by the Cedar
  policies (corridor.policy.cedar): same currency and creditor as an approved entry, and the
  amount plus what this grant has already paid against it within its amount (limits are
  cumulative per grant, design.md 5b). A refusal is 403 ``insufficient_scope``, and the record
  names the policy. Once the grant's payments in all would pass the step-up threshold, a
  payment also needs ``acr`` ``mfa`` or stronger (cumulative, so two payments of 500.00 at the
  password level cannot pass a threshold of 500.00); otherwise 401
  ``insufficient_user_authentication`` with ``acr_values="mfa"`` (RFC 9470), after which the
  client asks the AS again with ``acr_values=mfa`` (a new grant, with a budget of its own).

Accepted payments, and what each grant has spent, are kept in a database (``ledger.py``; a
SQLite file by default), per grant (the token's ``grant_id``), decided and booked in one
transaction so concurrent payments cannot pass the limit together (issue 13 D6).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from corridor.core.acr import AcrLevels
from corridor.resource.asgi import ProtectedResource, decide, require, resource_error_handler, result
from corridor.resource.evidence import Recorded
from corridor.resource.guard import ResourceGuard, step_up
from corridor.resource.tokens import AccessToken, ResourceError

from .ledger import Ledger

DEFAULT_STEP_UP_THRESHOLD = Decimal("500.00")
STEP_UP_ACR = "mfa"

#: What each route needs, as FastAPI dependencies (the value is the verified AccessToken).
Accounts = Annotated[AccessToken, Depends(require(scope="accounts", action="list_accounts:read"))]
PaymentInitiation = Annotated[
    AccessToken, Depends(require(scope="payments", details={"type": "payment_initiation"}))
]


#: What the records of a payment keep (issue 16): the payment's terms as the policy decided on
#: them (amount, currency, creditor name and account, remittance reference), and what the API did
#: with it (the payment id and status). A card number anywhere in them is masked, whatever this says.
PAYMENT_RECORD = Recorded(
    parameters=("amount", "currency", "creditor_name", "creditor_account", "reference"),
    result=("payment_id", "status"),
)


class CreditorAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iban: str = Field(min_length=5, max_length=34, pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]+$")


class PaymentRequest(BaseModel):
    """The body of ``POST /payments`` (field names as in RFC 9396's payment_initiation example)."""

    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=15, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    creditorName: str = Field(min_length=1, max_length=140)
    creditorAccount: CreditorAccount | None = None
    remittanceInformation: str | None = Field(default=None, max_length=140)


def grant_key(access: AccessToken) -> str:
    """Which grant a token comes from: the AS's ``grant_id`` claim when it sends one (Corridor
    does; a refreshed token keeps it), so each grant has a budget of its own (issue 13 D6).
    A token without one (another AS) falls back to a guess, the same client, user and granted
    authorization_details: then two grants with the same details share one budget, which errs
    on the side of paying less, never more."""
    if access.grant_id is not None:
        return grant_key_of(access.issuer, access.grant_id)
    body = json.dumps([access.client_id, access.subject, list(access.authorization_details)], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def grant_key_of(issuer: str, grant_id: str) -> str:
    """The ledger's key of the grant ``grant_id`` of ``issuer``."""
    return hashlib.sha256(json.dumps(["grant_id", issuer, grant_id]).encode()).hexdigest()


def payment_record(access: AccessToken, payment: PaymentRequest, now: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "paymentId": str(uuid.uuid4()),
        "status": "accepted",
        "instructedAmount": {"currency": payment.currency, "amount": f"{payment.amount:.2f}"},
        "creditorName": payment.creditorName,
        "createdAt": int(now),
        "clientId": access.client_id,
    }
    if payment.creditorAccount is not None:
        record["creditorAccount"] = payment.creditorAccount.model_dump()
    if payment.remittanceInformation:
        record["remittanceInformation"] = payment.remittanceInformation
    return record


def create_app(
    guard: ResourceGuard,
    ledger: Ledger,
    *,
    step_up_threshold: Decimal = DEFAULT_STEP_UP_THRESHOLD,
) -> ProtectedResource:
    """The FastAPI app behind :class:`ProtectedResource` (which also serves the RFC 9728 metadata);
    payments and what each grant spent are kept in ``ledger``."""
    app = FastAPI(title="Demo payments API", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(ResourceError, resource_error_handler)
    payments = ledger
    levels = AcrLevels(guard.settings.acr_levels)
    threshold_minor = int(step_up_threshold * 100)

    @app.get("/accounts")
    def accounts(access: Accounts) -> JSONResponse:
        return JSONResponse(
            {
                "accounts": [
                    {
                        "accountId": "acc-" + access.subject[:8],
                        "iban": "DE89370400440532013000",
                        "currency": "EUR",
                        "name": "Main account",
                    }
                ],
                "payments": payments.of(access.subject),
                "sub": access.subject,
                "client_id": access.client_id,
            },
            headers={"Cache-Control": "no-store"},
        )

    @app.post("/payments", status_code=201)
    def create_payment(payment: PaymentRequest, access: PaymentInitiation, request: Request) -> JSONResponse:
        amount_minor = int(payment.amount * 100)
        now = time.time()
        # One unit of work per payment, holding the grant (ledger.py): decided with what the
        # grant has spent at this moment, and booked before anyone else's decision.
        with ledger.booking(grant_key(access), now) as booking:
            decision = decide(
                request,
                "make_payment",
                scopes={"payments"},
                values={
                    "amount_minor": amount_minor,
                    "currency": payment.currency,
                    "creditor": payment.creditorName,
                    "creditor_account": payment.creditorAccount.iban if payment.creditorAccount else "",
                },
                spent_minor=booking.spent_minor,
                spent_by_entry=booking.by_entry,
                parameters={
                    "amount": f"{payment.amount:.2f}",
                    "currency": payment.currency,
                    "creditor_name": payment.creditorName,
                    "creditor_account": payment.creditorAccount.iban if payment.creditorAccount else None,
                    "reference": payment.remittanceInformation,
                },
                recorded=PAYMENT_RECORD,
            )
            if not strong_enough(access) and booking.spent_minor + amount_minor > threshold_minor:
                raise step_up(
                    f"payments above {step_up_threshold:.2f} in all need a stronger authentication",
                    acr_values=STEP_UP_ACR,
                )
            record = payment_record(access, payment, now)
            booking.add(access.subject, decision.payment_entry, amount_minor, record, now)
        result(request, {"payment_id": record["paymentId"], "status": record["status"]})
        return JSONResponse(
            {"payment": record, "payments": payments.of(access.subject)},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    def strong_enough(access: AccessToken) -> bool:
        """RFC 9470: the token's acr is the step-up level or stronger."""
        return levels.reaches(access.acr, STEP_UP_ACR)

    return ProtectedResource(app, guard)
