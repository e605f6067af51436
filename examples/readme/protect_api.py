from typing import Annotated, Any

from fastapi import Depends, FastAPI

from corridor.resource.asgi import ProtectedResource, require, resource_error_handler
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.resource.tokens import AccessToken, ResourceError

guard = ResourceGuard(
    ResourceSettings(
        resource="https://api.example.com",  # the audience tokens must name (RFC 8707)
        authorization_servers=("https://as.example.com",),
        public_url="https://api.example.com",  # DPoP htu derives from it (works behind proxies)
        scopes_supported=("accounts", "payments"),
    )
)
app = FastAPI()
app.add_exception_handler(ResourceError, resource_error_handler)

Payments = Annotated[AccessToken, Depends(require(scope="payments", details={"type": "payment_initiation"}))]


@app.post("/payments")
def pay(token: Payments) -> Any:
    # token is verified: subject, client_id, scopes, authorization_details, acr
    return {"for": token.subject}


asgi_app = ProtectedResource(app, guard)  # also serves /.well-known/oauth-protected-resource
