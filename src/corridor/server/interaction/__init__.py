"""The interaction: what a user does between GET /authorize and the code (issue 15, 1).

In: the pushed request's facts (``PushedFacts``); out: who signed in, how, and what they decided
(``InteractionResult``). One module per concern: the browser session and its cookies
(``browser``), the interaction and its pushed request (``visit``), password sign-in
(``password``), the second factor (``second_factor``), passkeys (``passkeys``), consent
(``consent``), which of them a GET shows (``steps``), and every Store call of the package
(``storage``). The code is issued outside (server/authorization_code.py), from the result and
the facts alone.
"""
