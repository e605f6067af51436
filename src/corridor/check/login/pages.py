# Why over 450 lines: the page-reading rules (sign-in form, consent buttons, self-submitting
# pages) are shared by both login drivers and are tested as one set.
"""Reading an authorization server's pages the way a person would: which form signs in, which
button approves or denies, which page submits itself. Shared by the html-form driver (on the
response bodies) and the Chromium driver (on the live DOM, serialised).

Rules (``[login] method``, issue 14):

- a *sign-in form* is a form with a password input; the user name goes into the last text or
  email input before it (none: a password-only step). A form with one visible text/email input
  that looks like a user name (``autocomplete=username``, ``name=login|user|email|identifier``)
  and no password is the first step of an identifier-first sign-in;
- a *consent page* has a form whose submit controls (``<button>``, ``<input type=submit|image>``)
  read as approve (approve, allow, accept, authorize, continue, confirm, yes, grant, agree) or as
  deny (deny, cancel, reject, decline, abort, no, refuse, "don't allow"), judged on the visible
  label first, then the ``value``, then the ``name``/``id``/``class``; a deny may also be a link
  (oidc-provider's development pages: ``[ Cancel ]``, ``[ Abort ]``);
- an *auto-submitting* page is a form with no visible control and a script (or ``onload``) that
  submits it; a ``<meta http-equiv=refresh>`` of at most 5 s is followed at once.

Only the standard library's :mod:`html.parser` (no new dependency)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

APPROVE_WORDS = re.compile(
    r"\b(approve|allow|accept|authori[sz]e|continue|confirm|yes|grant|agree|proceed|ok)\b", re.I
)
DENY_WORDS = re.compile(
    r"\b(deny|cancel|reject|decline|abort|no|refuse|disallow|don'?t\s+allow|do\s+not\s+allow|not\s+now)\b",
    re.I,
)
#: A deny link's text starts with the word ("[ Cancel ]", "Abort", "Cancel and go back"), so
#: "Don't have an account?" or "No access? Ask your administrator" are not denials.
DENY_LINK = re.compile(
    r"^(deny|cancel|reject|decline|abort|no|refuse|disallow|don'?t\s+allow|do\s+not\s+allow|not\s+now)\b"
    r"(?!\s*(access|account)\b)",
    re.I,
)
#: In names, ids and classes short words are noise (``btn-no-border``).
DENY_NAME_WORDS = re.compile(r"(deny|cancel|reject|decline|abort|refuse|disallow)", re.I)
APPROVE_NAME_WORDS = re.compile(r"(approve|allow|accept|authori[sz]e|consent|confirm|grant|agree)", re.I)
USERNAME_HINTS = re.compile(r"(user|login|email|e-mail|identifier|account)", re.I)
MAX_REFRESH_DELAY = 5.0
SUBMIT_SCRIPT = re.compile(r"\.\s*(submit|requestSubmit)\s*\(", re.I)

_LISTED = ("input", "button", "select", "textarea")


@dataclass
class Control:
    """One form control, in document order; ``position`` counts the form's input, button,
    select and textarea elements (``form.querySelectorAll('input,button,select,textarea')``)."""

    tag: str
    type: str
    name: str
    value: str
    position: int
    attrs: dict[str, str]
    label: str = ""
    checked: bool = False
    disabled: bool = False
    hidden: bool = False
    in_noscript: bool = False
    options: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def is_submit(self) -> bool:
        if self.tag == "button":
            return self.type == "submit"
        return self.tag == "input" and self.type in ("submit", "image")

    @property
    def visible(self) -> bool:
        return not (self.hidden or self.in_noscript or self.type == "hidden")

    def shown_label(self) -> str:
        if self.tag == "button":
            return self.label
        return self.value or ("Submit" if self.type == "submit" else "")


@dataclass
class Form:
    """A form: ``index`` is its place among the document's forms."""

    index: int
    action: str
    method: str
    attrs: dict[str, str]
    controls: list[Control] = field(default_factory=list)

    def submit_controls(self) -> list[Control]:
        return [c for c in self.controls if c.is_submit and not c.disabled and c.visible]

    def password_inputs(self) -> list[Control]:
        return [c for c in self.controls if c.tag == "input" and c.type == "password" and not c.disabled]

    def text_inputs(self) -> list[Control]:
        return [
            c
            for c in self.controls
            if c.tag == "input" and c.type in ("text", "email") and not c.disabled and c.visible
        ]

    def has_visible_controls(self) -> bool:
        return any(c.visible and c.type not in ("hidden",) for c in self.controls)

    def entries(
        self, submitter: Control | None = None, fill: dict[int, str] | None = None
    ) -> list[tuple[str, str]]:
        """The form data set (HTML 4.10.21.4): named, enabled controls; checkboxes and radios only
        when checked; buttons only as the submitter; ``fill`` overrides values by position."""
        fill = fill or {}
        pairs: list[tuple[str, str]] = []
        for control in self.controls:
            if control.disabled or not control.name:
                continue
            value = fill.get(control.position, control.value)
            if control.is_submit or control.tag == "button" or control.type in ("reset", "button"):
                if control is submitter:
                    if control.type == "image":
                        pairs += [(control.name + ".x", "0"), (control.name + ".y", "0")]
                    else:
                        pairs.append((control.name, control.value))
                continue
            if control.tag == "input" and control.type in ("checkbox", "radio"):
                if control.checked:
                    pairs.append((control.name, control.value or "on"))
                continue
            if control.tag == "input" and control.type == "file":
                continue
            if control.tag == "select":
                chosen = [v for v, selected in control.options if selected]
                if not chosen and control.options and "multiple" not in control.attrs:
                    chosen = [control.options[0][0]]
                pairs += [(control.name, v) for v in chosen]
                continue
            pairs.append((control.name, value))
        return pairs


@dataclass
class Link:
    """An ``<a href>``; ``index`` is its place among the document's ``a[href]``."""

    index: int
    href: str
    text: str


@dataclass
class Page:
    forms: list[Form]
    links: list[Link]
    title: str
    text: str
    base: str
    refresh: tuple[float, str] | None
    submits_itself: bool

    def excerpt(self) -> str:
        words = " ".join(part for part in (self.title, self.text) if part)
        return re.sub(r"\s+", " ", words).strip()[:300]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[Link] = []
        self.form: Form | None = None
        self.title = ""
        self.text: list[str] = []
        self.base = ""
        self.refresh: tuple[float, str] | None = None
        self.scripts: list[str] = []
        self.onload = ""
        self._skip = 0  # inside script/style/template
        self._noscript = 0
        self._title = False
        self._button: Control | None = None
        self._textarea: Control | None = None
        self._select: Control | None = None
        self._option: tuple[Control, dict[str, str], list[str]] | None = None
        self._link: tuple[Link, list[str]] | None = None
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v if v is not None else "") for k, v in attrs_list}
        if tag in ("script", "style", "template"):
            self._skip += 1
            if tag == "script":
                self._script = []
            return
        if tag == "noscript":
            self._noscript += 1
        elif tag == "title":
            self._title = True
        elif tag == "base" and "href" in attrs and not self.base:
            self.base = attrs["href"]
        elif tag == "body" and "onload" in attrs:
            self.onload = attrs["onload"]
        elif tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            self.refresh = _parse_refresh(attrs.get("content", "")) or self.refresh
        elif tag == "form":
            if self.form is None:  # HTML ignores a form start tag inside a form
                self.form = Form(
                    len(self.forms), attrs.get("action", ""), (attrs.get("method") or "get").lower(), attrs
                )
                self.forms.append(self.form)
        elif tag == "a" and "href" in attrs:
            self._link = (Link(len(self.links), attrs["href"], ""), [])
            self.links.append(self._link[0])
        elif tag in _LISTED and self.form is not None:
            self._control(tag, attrs)
        elif tag == "option" and self._select is not None:
            self._option = (self._select, attrs, [])

    def _control(self, tag: str, attrs: dict[str, str]) -> None:
        assert self.form is not None
        default_type = {"input": "text", "button": "submit"}.get(tag, tag)
        kind = (attrs.get("type") or default_type).lower()
        if tag == "button" and kind not in ("submit", "reset", "button"):
            kind = "submit"
        control = Control(
            tag=tag,
            type=kind,
            name=attrs.get("name", ""),
            value=attrs.get("value", ""),
            position=len(self.form.controls),
            attrs=attrs,
            checked="checked" in attrs,
            disabled="disabled" in attrs,
            hidden="hidden" in attrs or _display_none(attrs.get("style", "")),
            in_noscript=self._noscript > 0,
        )
        self.form.controls.append(control)
        if tag == "button":
            self._button = control
        elif tag == "textarea":
            self._textarea = control
        elif tag == "select":
            self._select = control

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("input", "meta", "base", "br", "img", "hr", "link"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self._skip = max(0, self._skip - 1)
            if tag == "script" and self._script is not None:
                self.scripts.append("".join(self._script))
                self._script = None
            return
        if tag == "noscript":
            self._noscript = max(0, self._noscript - 1)
        elif tag == "title":
            self._title = False
        elif tag == "form":
            self.form = None
            self._button = self._textarea = self._select = None
        elif tag == "button" and self._button is not None:
            self._button.label = " ".join(self._button.label.split())
            self._button = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._close_option()
            self._select = None
        elif tag == "option":
            self._close_option()
        elif tag == "a" and self._link is not None:
            link, parts = self._link
            link.text = " ".join("".join(parts).split())
            self._link = None

    def _close_option(self) -> None:
        if self._option is None:
            return
        select, attrs, parts = self._option
        value = attrs["value"] if "value" in attrs else " ".join("".join(parts).split())
        select.options.append((value, "selected" in attrs))
        self._option = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            if self._script is not None:
                self._script.append(data)
            return
        if self._title:
            self.title += data
            return
        if self._button is not None:
            self._button.label += data
        if self._textarea is not None:
            self._textarea.value += data
        if self._option is not None:
            self._option[2].append(data)
        if self._link is not None:
            self._link[1].append(data)
        if not self._noscript:
            self.text.append(data)


def _display_none(style: str) -> bool:
    return bool(re.search(r"display\s*:\s*none|visibility\s*:\s*hidden", style, re.I))


def _parse_refresh(content: str) -> tuple[float, str] | None:
    """``<meta http-equiv=refresh content="0; url=/next">`` (HTML 4.2.5.3)."""
    match = re.match(r"\s*(\d+(?:\.\d*)?)\s*(?:[;,]\s*(?:url\s*=\s*)?(.*))?$", content, re.I | re.S)
    if not match:
        return None
    target = (match.group(2) or "").strip().strip("'\"")
    return float(match.group(1)), target


def parse_page(html_text: str) -> Page:
    parser = _Parser()
    parser.feed(html_text)
    parser.close()
    scripts = " ".join(parser.scripts)
    return Page(
        forms=parser.forms,
        links=parser.links,
        title=" ".join(parser.title.split()),
        text=" ".join(" ".join(parser.text).split()),
        base=parser.base,
        refresh=parser.refresh,
        submits_itself=bool(SUBMIT_SCRIPT.search(scripts) or SUBMIT_SCRIPT.search(parser.onload)),
    )


def classify(control: Control) -> str | None:
    """``approve``, ``deny`` or None for a submit control."""
    for text in (control.shown_label(), control.value if control.tag == "button" else ""):
        if text:
            if DENY_WORDS.search(text):
                return "deny"
            if APPROVE_WORDS.search(text):
                return "approve"
    names = " ".join(control.attrs.get(k, "") for k in ("name", "id", "class"))
    if DENY_NAME_WORDS.search(names):
        return "deny"
    if APPROVE_NAME_WORDS.search(names):
        return "approve"
    return None


def deny_link(page: Page) -> Link | None:
    for link in page.links:
        href = link.href.strip().lower()
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            continue
        text = link.text.strip("[]()« ").strip()
        if text and len(text) <= 40 and DENY_LINK.search(text):
            return link
    return None


@dataclass(frozen=True)
class Step:
    """What the user does next on a page.

    ``kind``: ``sign_in`` (fill ``fill`` and submit ``form`` with ``button``), ``identifier``
    (the user name alone), ``press`` (a consent button), ``link`` (a deny link), ``auto``
    (a form that submits itself), ``refresh`` (a meta refresh to ``url``) or ``stuck`` (nothing
    to do: ``reason`` says why)."""

    kind: str
    form: Form | None = None
    button: Control | None = None
    link: Link | None = None
    url: str = ""
    fill: dict[int, str] = field(default_factory=dict)
    password: Control | None = None
    username: Control | None = None
    decision: str = ""
    reason: str = ""

    @property
    def interaction(self) -> bool:
        """A step of signing in or consenting (where ``visit()`` stops)."""
        return self.kind in ("sign_in", "identifier", "press", "link") or (
            self.kind == "stuck" and self.form is not None
        )


def _sign_in_form(page: Page) -> tuple[Form, Control] | None:
    candidates = [(f, f.password_inputs()[0]) for f in page.forms if f.password_inputs()]
    for form, password in candidates:  # prefer a form with a user name input before the password
        if any(c.position < password.position for c in form.text_inputs()):
            return form, password
    return candidates[0] if candidates else None


def _identifier_form(page: Page) -> tuple[Form, Control] | None:
    for form in page.forms:
        inputs = form.text_inputs()
        if len(inputs) != 1 or form.password_inputs():
            continue
        control = inputs[0]
        hints = " ".join(control.attrs.get(k, "") for k in ("name", "id", "autocomplete", "type"))
        if USERNAME_HINTS.search(hints):
            return form, control
    return None


def _first(controls: list[Control], decision: str) -> Control | None:
    return next((c for c in controls if classify(c) == decision), None)


def next_step(page: Page, *, approve: bool, username: str, password: str) -> Step:
    """The user's next step on ``page`` (approve or deny at the first chance)."""
    if page.submits_itself and not any(f.has_visible_controls() for f in page.forms):
        # An interstitial that posts itself (a form_post-like page): a form with nothing to
        # fill and no button but in <noscript> (a hidden type=button is a script's, not ours).
        for form in page.forms:
            if not any(c.tag == "button" or c.is_submit for c in form.controls if not c.in_noscript):
                return Step("auto", form=form)
    if page.refresh is not None and page.refresh[0] <= MAX_REFRESH_DELAY:
        return Step("refresh", url=page.refresh[1])
    if not approve:
        # "reject the authentication or consent, for example by pressing 'cancel' on the login
        # screen" (the suite's user-rejects-authentication): a deny on this page wins.
        for form in page.forms:
            button = _first(form.submit_controls(), "deny")
            if button is not None:
                return Step("press", form=form, button=button, decision="deny")
        link = deny_link(page)
        if link is not None:
            return Step("link", link=link, decision="deny")
    sign_in = _sign_in_form(page)
    if sign_in is not None:
        form, secret = sign_in
        before = [c for c in form.text_inputs() if c.position < secret.position]
        user = before[-1] if before else None
        fill = {secret.position: password}
        if user is not None:
            fill[user.position] = username
        buttons = [c for c in form.submit_controls() if classify(c) != "deny"]
        return Step(
            "sign_in",
            form=form,
            button=buttons[0] if buttons else None,
            fill=fill,
            password=secret,
            username=user,
        )
    identifier = _identifier_form(page)
    if identifier is not None:
        form, user = identifier
        buttons = [c for c in form.submit_controls() if classify(c) != "deny"]
        return Step(
            "identifier",
            form=form,
            button=buttons[0] if buttons else None,
            fill={user.position: username},
            username=user,
        )
    submits = [(f, c) for f in page.forms for c in f.submit_controls()]
    if approve:
        for form, control in submits:
            if classify(control) == "approve":
                return Step("press", form=form, button=control, decision="approve")
        plain = [(f, c) for f, c in submits if classify(c) != "deny"]
        if len(plain) == 1 and len(submits) <= 2:
            return Step("press", form=plain[0][0], button=plain[0][1], decision="approve")
    shown = next((f for f in page.forms if f.has_visible_controls()), None)
    if submits or shown is not None:
        wanted = "approve" if approve else "deny"
        return Step(
            "stuck", form=submits[0][0] if submits else shown, reason=f"no {wanted} control on the page"
        )
    return Step("stuck", reason="no form to go on with")


def form_target(page_url: str, page: Page, form: Form) -> str:
    """Where a form submits (its action against the page's base URL; none: the page itself)."""
    base = urljoin(page_url, page.base) if page.base else page_url
    return urljoin(base, form.action.strip()) if form.action.strip() else page_url


def link_target(page_url: str, page: Page, href: str) -> str:
    base = urljoin(page_url, page.base) if page.base else page_url
    return urljoin(base, href.strip())
