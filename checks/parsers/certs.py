"""X.509 certificates as plain facts: what the TLS checks compare and what a human reads.

Pure (no I/O): the probe hands in the DER bytes of the certificate it was served in its own handshake, the
SSH round hands in the PEM text of the `ssl_certificate` file nginx names. Both become `CertFacts`, so "the
served one" and "the one on disk" are compared on the same fields (serial, not-after, names).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from checks.parsers import ParseError

#: Our words for why a certificate does not verify -> their catalog keys (checks/messages.py).
WHY_KEYS: dict[str, str] = {
    "expired": "tls.why.expired",
    "not_yet_valid": "tls.why.not_yet_valid",
    "wrong_name": "tls.why.wrong_name",
    "untrusted": "tls.why.untrusted",
    "other": "tls.why.unverified",
}
#: The kinds that are a certificate the browser refuses (cause tls_certificate_invalid).
CERT_INVALID_KINDS = frozenset({"expired", "not_yet_valid", "wrong_name", "untrusted"})

_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


@dataclass(frozen=True, slots=True)
class CertFacts:
    """The facts of one certificate; times are UTC ISO-8601 strings and epoch seconds (JSON-ready)."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    serial: str  # hex, upper case, no separators
    not_before: str
    not_after: str
    not_before_ts: int
    not_after_ts: int
    sha256: str
    self_signed: bool

    def days_left(self, now: float) -> float:
        return (self.not_after_ts - now) / 86400

    def covers(self, host: str) -> bool:
        """Does a SAN (or, without SANs, the CN) name `host`? RFC 6125: one left-most `*` label at most."""
        names = self.sans or tuple(p.removeprefix("CN=") for p in self.subject.split(",") if p.startswith("CN="))
        return any(_name_matches(name, host) for name in names)

    def as_details(self) -> dict[str, Any]:
        return asdict(self) | {"sans": list(self.sans)}


def _name_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".").strip("[]")
    if pattern == host:
        return True
    with_ip = pattern.removeprefix("ip:")
    try:
        return ipaddress.ip_address(with_ip) == ipaddress.ip_address(host)
    except ValueError:
        pass
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:]
    return False


def _name(name: x509.Name) -> str:
    """`CN=chat.example.com,O=Let's Encrypt` style, most specific (CN) first, as humans read it."""
    parts = [f"{attr.rfc4514_attribute_name}={attr.value!s}" for attr in reversed(list(name))]
    return ",".join(parts)


def facts_of(cert: x509.Certificate) -> CertFacts:
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans += [str(n) for n in ext.get_values_for_type(x509.DNSName)]
        sans += [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    return CertFacts(
        subject=_name(cert.subject) or "-",
        issuer=_name(cert.issuer) or "-",
        sans=tuple(sans),
        serial=f"{cert.serial_number:X}",
        not_before=before.isoformat(),
        not_after=after.isoformat(),
        not_before_ts=int(before.timestamp()),
        not_after_ts=int(after.timestamp()),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        self_signed=cert.issuer == cert.subject,
    )


def from_der(der: bytes) -> CertFacts:
    try:
        return facts_of(x509.load_der_x509_certificate(der))
    except ValueError as exc:
        raise ParseError(f"not a DER certificate: {exc}") from None


def from_pem(text: str) -> CertFacts:
    """The first certificate of a PEM file (the leaf, in a fullchain.pem)."""
    found = _PEM_RE.search(text)
    if not found:
        raise ParseError("no PEM certificate in the file")
    try:
        return facts_of(x509.load_pem_x509_certificate(found.group(0).encode()))
    except ValueError as exc:
        raise ParseError(f"not a PEM certificate: {exc}") from None


def cert_names(cert: CertFacts) -> str:
    """SANs for display, or the subject when there are none."""
    return ", ".join(cert.sans) if cert.sans else cert.subject


#: `ssl_certificate PATH;` in an `nginx -T` dump. `ssl_certificate_key` does not match (the `\s` after).
_SSL_CERT_RE = re.compile(r"^\s*ssl_certificate\s+(?P<q>['\"]?)(?P<path>[^;'\"\s]+)(?P=q)\s*;", re.MULTILINE)


def ssl_certificate_files(files: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(cert path, config file, line) of every `ssl_certificate` in the dump's files, in dump order.

    A path holding a variable (`$ssl_server_name`) is left out: nginx resolves it per handshake and so
    cannot be read ahead. Comment lines are skipped by the anchor (`#` before the directive fails `^\\s*`)."""
    out: list[tuple[str, str, int]] = []
    for conf, content in files:
        for m in _SSL_CERT_RE.finditer(content):
            path = m.group("path")
            if "$" in path or path.startswith("data:"):
                continue
            out.append((path, conf, content.count("\n", 0, m.start()) + 1))
    return out


