"""The transport layer: TLS listeners, the mTLS trust store, client-certificate sources,
header and time limits, and the TLS context for outbound calls (FAPI2 5.2.1, 5.2.2; BCP 195;
RFC 8705; RFC 9440; design.md 5, 5c).

It imports only :mod:`corridor.core` (and the web server it drives, uvicorn); the
authorization server (:mod:`corridor.server`) and resource servers (:mod:`corridor.resource`,
the demo API) build their listeners from it, so a resource server needs nothing from the AS.
:mod:`corridor.core` never imports it.

* :mod:`corridor.transport.certificates`: where a client certificate comes from (the TLS socket
  or a trusted proxy's header), read in one place.
* :mod:`corridor.transport.tls`: the server TLS context, dev TLS material, the outbound context.
* :mod:`corridor.transport.trust`: the mTLS listener's trust store and the listener mark.
* :mod:`corridor.transport.listeners`: uvicorn listeners with bounded input and time, sockets,
  the event loop and forked workers.
"""
