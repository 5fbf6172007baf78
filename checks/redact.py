"""Mask credentials in text before it is shown in Slack, stored, or logged.

Everything wscheck relays from a server (log tails, process arguments, config snippets, command output) can
carry secrets: a `DATABASE_URL` in an env dump, a bearer token in a request log, a Slack token in a crash
message. Redaction keeps the *name* of what was there (the key, the URL user, the token prefix), because the
operator still needs to know which setting is involved, and replaces only the value with `***`.

The rules are deliberately value-shaped: ordinary prose ("token bucket refilled", "password reset sent")
has no value attached and is left alone, so log lines stay readable.
"""

from __future__ import annotations

import re

MASK = "***"

# A `-----BEGIN ... PRIVATE KEY-----` block up to its END line, or up to the end of the text when the block
# was cut off (a truncated log line must not leak the half that is left).
_PEM = re.compile(
    r"(-----BEGIN (?P<kind>[A-Z0-9 ]*?)PRIVATE KEY-----)"
    r"(?:.*?(-----END (?P=kind)PRIVATE KEY-----)|.*\Z)",
    re.DOTALL,
)

# scheme://user:password@host: keep the user, mask the password. The password stops at "/" so an
# ordinary "http://host:3000/@user" path is not mistaken for credentials. Anchored on "://" alone (no
# scheme) so the scan stays linear however the text around it looks.
_URL_CREDS = re.compile(r"(?P<head>://[^\s:/@\"'<>]*+:)(?P<pw>[^\s@/\"'<>]++)(?=@)")

# Authorization headers, with or without a scheme word, in header, key=value and JSON forms.
_AUTH_HEADER = re.compile(
    r"(?P<head>(?P<q>[\"']?)\b(?:proxy-)?authorization(?P=q)[ \t]*[:=][ \t]*[\"']?"
    r"(?:(?:bearer|basic|token|digest|bot)[ \t]+)?)"
    r"(?P<val>[^\s\"',;]+)",
    re.IGNORECASE,
)

# A bare "Bearer <token>" elsewhere (curl -H lines, proxy logs). Capitalised word and a token that looks
# like one (has a digit or punctuation), so prose such as "the bearer information" is left alone.
_BEARER = re.compile(
    r"\b(?P<head>Bearer|BEARER)[ \t]+(?P<val>(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})"
)

# Key names whose value is a secret. Matched inside the key token, so DB_PASSWORD, STRIPE_SECRET_KEY,
# x-api-key, access_token and --password all count. A bare "pwd" is not here: PWD is the working directory.
_SENSITIVE_KEY = re.compile(
    r"passw(?:or)?d|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|"
    r"session[_-]?key|signing[_-]?key|encryption[_-]?key|(?:^|[_.-])pass$",
    re.IGNORECASE,
)

# "key" followed by = or : (key=value, key: value, "key": "value", 'key': 'value', KEY=value, --password=x).
# Only the key and separator are matched here; the value is matched separately, and only for a sensitive
# key, so an ordinary `foo=password=x` still exposes `password=x` to the scan.
_KEY_SEP = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<kq>[\"']?)(?P<key>[A-Za-z0-9_.-]++)(?P=kq)[ \t]*+(?:=|:(?!//))[ \t]*+"
)
# Command-line flags with the value after a space: `--db-password hunter2`, `-token abc`.
_FLAG_SEP = re.compile(r"(?<![^\s\"'])(?P<key>--?[A-Za-z][A-Za-z0-9_.-]*+)[ \t]++(?=[^\s-])")
# Cookies are credentials as a whole: mask the entire header value.
_COOKIE = re.compile(r"(?P<head>\b(?:set-)?cookie[ \t]*:[ \t]*)(?P<val>[^\r\n]*[^\s\r\n])", re.IGNORECASE)
_VALUE = re.compile(r"\"(?:[^\"\\\n]|\\.)*+\"|'(?:[^'\\\n]|\\.)*+'|[^\s,;&\"'<>{}\[\]()]++")

# Secrets recognisable by their shape alone; the prefix is kept so a reader knows what kind it was.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(xox[abposre]-|xapp-)[A-Za-z0-9-]{6,}"), r"\1" + MASK),
    (re.compile(r"\b(github_pat_)[A-Za-z0-9_]{8,}"), r"\1" + MASK),
    (re.compile(r"\b(gh[pousr]_)[A-Za-z0-9]{20,}"), r"\1" + MASK),
    (re.compile(r"\b((?:sk|rk|pk)_(?:live|test)_)[A-Za-z0-9]{10,}"), r"\1" + MASK),
    (re.compile(r"\b((?:AKIA|ASIA))[A-Z0-9]{16}\b"), r"\1" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
)

_MAX_PASSES = 4


def _mask_quoted(value: str) -> str:
    """Mask a value but keep the quotes around it, so JSON and shell syntax stay recognisable."""
    if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
        return value[0] + MASK + value[0]
    return MASK


def _pem(match: re.Match[str]) -> str:
    end = match.group(3) or ""
    return match.group(1) + MASK + end


def _key_values(text: str, key_sep: re.Pattern[str]) -> str:
    """Mask the value after every sensitive key; a single left-to-right scan, linear in the text."""
    out: list[str] = []
    pos = 0
    while (match := key_sep.search(text, pos)) is not None:
        out.append(text[pos : match.end()])
        pos = match.end()
        if _SENSITIVE_KEY.search(match.group("key")) is None:
            continue
        value = _VALUE.match(text, pos)
        if value is not None:
            out.append(_mask_quoted(value.group()))
            pos = value.end()
    out.append(text[pos:])
    return "".join(out)


def _one_pass(text: str) -> str:
    text = _PEM.sub(_pem, text)
    text = _URL_CREDS.sub(lambda m: m.group("head") + MASK, text)
    text = _AUTH_HEADER.sub(lambda m: m.group("head") + MASK, text)
    text = _BEARER.sub(lambda m: m.group("head") + " " + MASK, text)
    text = _COOKIE.sub(lambda m: m.group("head") + MASK, text)
    text = _key_values(text, _KEY_SEP)
    text = _key_values(text, _FLAG_SEP)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def redact(text: str) -> str:
    """Return `text` with every recognised secret value replaced by `***`.

    The rules run until nothing changes (bounded), so redacting twice gives the same result as redacting
    once: a masked value is never re-masked differently, and callers may redact defensively at every layer.
    """
    for _ in range(_MAX_PASSES):
        new = _one_pass(text)
        if new == text:
            return new
        text = new
    return text
