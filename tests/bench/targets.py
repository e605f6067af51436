"""The load driver's target for an in-process AS: a new client and a new user of it."""

from __future__ import annotations

from bench.driver import Target

from tests.support import PASSWORD, Driver


def new_target(driver: Driver) -> Target:
    registered = driver.add_client()
    username = driver.add_user()
    return Target(
        driver.issuer,
        registered.client_id,
        registered.key,
        registered.redirect_uri,
        username,
        PASSWORD,
        str(driver.as_.tls.ca_file),
    )
