"""``corridor check``: a black-box FAPI 2.0 Security Profile (Final) conformance checker for any
authorization server, module for module after the OpenID Foundation's
``fapi2-security-profile-final-test-plan`` (``fapi_profile=plain_fapi``).

Imports :mod:`corridor.client` and :mod:`corridor.core` only, never :mod:`corridor.server`:
it must work against other servers (design.md 1)."""
