"""The demo payments API: a FastAPI app protected by ``corridor.resource``.

Routes (every one needs a sender-constrained access token whose ``aud`` is this API):

* ``GET /accounts`` (tool action ``list_accounts:read``): scope ``accounts``; the user's demo
  account and the payments accepted so far.
* ``POST /payments`` (tool action ``make_payment``): scope ``payments`` and a
  ``payment_initiation`` entry (RFC 9396). Whether this payment may go is decided by the Cedar
  policies (corridor.policy.cedar): same currency and creditor as granted, and the amount plus
  what this grant has already paid within the granted amount (limits are cumulative per grant,
  design.md 5b). A refusal is 403 ``insufficient_scope``, and the record names the policy. A
  payment above the step-up threshold also needs ``acr`` ``mfa`` or stronger; otherwise 401
  ``insufficient_user_authentication`` with ``acr_values="mfa"`` (RFC 9470), after which the
  client asks the AS again with ``acr_values=mfa``.

Accepted payments, and so what each grant has spent, are kept in memory (lost on restart).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from corridor.resource.asgi import ProtectedResource, decide, require, resource_error_handler
from corridor.resource.guard import (
    AccessToken,
    ResourceError,
    ResourceGuard,
    step_up,
)

DEFAULT_STEP_UP_THRESHOLD = Decimal("500.00")
STEP_UP_ACR = "mfa"
MAX_PAYMENTS = 10_000  # the in-memory list is bounded

#: What each route needs, as FastAPI dependencies (the value is the verified AccessToken).
Accounts = Annotated[AccessToken, Depends(require(scope="accounts", action="list_accounts:read"))]
PaymentInitiation = Annotated[
    AccessToken, Depends(require(scope="payments", details={"type": "payment_initiation"}))
]


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


class Payments:
    """Accepted payments, in memory, per user (subject)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []

    def add(self, access: AccessToken, payment: PaymentRequest, now: float) -> dict[str, Any]:
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
        with self._lock:
            self._items.append(
                {
                    **record,
                    "_subject": access.subject,
                    "_grant": grant_key(access),
                    "_minor": int(payment.amount * 100),
                }
            )
            del self._items[:-MAX_PAYMENTS]
        return record

    def spent_minor(self, grant: str) -> int:
        """What the grant has paid so far, in minor units (the policies' ``spent_minor``)."""
        with self._lock:
            return sum(item["_minor"] for item in self._items if item["_grant"] == grant)

    def of(self, subject: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {k: v for k, v in item.items() if not k.startswith("_")}
                for item in self._items
                if item["_subject"] == subject
            ]


def grant_key(access: AccessToken) -> str:
    """Which grant a token comes from, as far as an RS can tell: the same client, user and
    granted authorization_details (a refreshed token keeps all three)."""
    body = json.dumps([access.client_id, access.subject, list(access.authorization_details)], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def create_app(
    guard: ResourceGuard, *, step_up_threshold: Decimal = DEFAULT_STEP_UP_THRESHOLD
) -> ProtectedResource:
    """The FastAPI app behind :class:`ProtectedResource` (which also serves the RFC 9728 metadata)."""
    app = FastAPI(title="Demo payments API", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(ResourceError, resource_error_handler)
    payments = Payments()
    levels = guard.settings.acr_levels

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
        decide(
            request,
            "make_payment",
            scopes={"payments"},
            values={
                "amount_minor": int(payment.amount * 100),
                "currency": payment.currency,
                "creditor": payment.creditorName,
                "creditor_account": payment.creditorAccount.iban if payment.creditorAccount else "",
            },
            spent_minor=payments.spent_minor(grant_key(access)),
        )
        if payment.amount > step_up_threshold:
            have = levels.index(access.acr) if access.acr in levels else -1
            if have < levels.index(STEP_UP_ACR):
                raise step_up(
                    f"payments above {step_up_threshold:.2f} need a stronger authentication",
                    acr_values=STEP_UP_ACR,
                )
        record = payments.add(access, payment, time.time())
        return JSONResponse(
            {"payment": record, "payments": payments.of(access.subject)},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    return ProtectedResource(app, guard)
