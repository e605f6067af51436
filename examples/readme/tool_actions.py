from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from corridor.resource.asgi import decide, require
from corridor.resource.tokens import AccessToken

from .protect_api import app  # the app above

Accounts = Annotated[AccessToken, Depends(require(scope="accounts", action="list_accounts:read"))]
PaymentsScope = Annotated[AccessToken, Depends(require(scope="payments"))]


class Payment(BaseModel):
    amount_minor: int
    currency: str
    creditor: str


@app.get("/accounts")
def accounts(token: Accounts) -> Any:
    return {"accounts": []}


@app.post("/transfers")
def transfer(body: Payment, request: Request, token: PaymentsScope) -> Any:
    spent_by_this_grant = 0  # what this grant already paid, from your ledger (minor units)
    decide(
        request,
        "make_payment",
        scopes={"payments"},
        spent_minor=spent_by_this_grant,
        values={"amount_minor": body.amount_minor, "currency": body.currency, "creditor": body.creditor},
    )
    return {"status": "accepted"}
