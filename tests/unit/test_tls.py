"""TLS and redirects in-process (wt-tls): certificate facts, the probe's own handshake against a real asyncio TLS
server on 127.0.0.1:0, the tls.certificate check over FunctionTransport, and the diagnosis rules."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from checks.config import Target
from checks.diagnosis import CAUSES, diagnose
from checks.models import CheckResult, Status
from checks.parsers.certs import from_der, from_pem, ssl_certificate_files
from checks.probes import ProbeTlsError, TlsSeen, public_opener
from checks.runner import run_checks
from checks.transport import CommandResult, FunctionTransport

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Pki:
    ca_pem: bytes
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    def leaf(self, names: Sequence[str] = ("localhost", "127.0.0.1"), *, before: float = -1,
             after: float = 90) -> tuple[bytes, bytes, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW + dt.timedelta(days=before)).not_valid_after(NOW + dt.timedelta(days=after))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return pem, key_pem, cert


@pytest.fixture(scope="module")
def pki() -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wscheck test CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return Pki(cert.public_bytes(serialization.Encoding.PEM), key, cert)


HTTP_OK = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def tls_server(tmp: Path, pem: bytes, key: bytes, answer: bytes = HTTP_OK) -> asyncio.Server:
    """A real TLS server on 127.0.0.1:0 answering every request with `answer`."""
    (tmp / "cert.pem").write_bytes(pem)
    (tmp / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    servers: list[asyncio.Server] = []

    async def start(pem: bytes, key: bytes, answer: bytes = HTTP_OK) -> int:
        server = await tls_server(tmp_path, pem, key, answer)
        servers.append(server)
        return port_of(server)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


# -- certificate facts ------------------------------------------------------------------------------------------


def test_facts_of_a_certificate(pki: Pki) -> None:
    pem, _, cert = pki.leaf(("chat.example.com", "*.example.com", "203.0.113.10"), after=30)
    facts = from_pem(pem.decode())
    assert facts == from_der(cert.public_bytes(serialization.Encoding.DER))
    assert facts.subject == "CN=chat.example.com" and facts.issuer == "CN=wscheck test CA"
    assert facts.sans == ("chat.example.com", "*.example.com", "IP:203.0.113.10")
    assert facts.serial == f"{cert.serial_number:X}"
    assert 29 < facts.days_left(NOW.timestamp()) <= 30
    assert facts.covers("chat.example.com") and facts.covers("www.example.com") and facts.covers("203.0.113.10")
    assert not facts.covers("a.b.example.com") and not facts.covers("example.org")


def test_ssl_certificate_files_from_a_dump() -> None:
    files = [("/etc/nginx/sites-enabled/app", "server {\n    listen 443 ssl;\n"
              "    ssl_certificate /etc/letsencrypt/live/app/fullchain.pem;\n"
              "    ssl_certificate_key /etc/letsencrypt/live/app/privkey.pem;\n"
              "    # ssl_certificate /old.pem;\n"
              "    ssl_certificate /etc/ssl/$ssl_server_name.pem;\n"
              "    ssl_certificate \"/etc/ssl/quoted.pem\";\n}\n")]
    assert ssl_certificate_files(files) == [
        ("/etc/letsencrypt/live/app/fullchain.pem", "/etc/nginx/sites-enabled/app", 3),
        ("/etc/ssl/quoted.pem", "/etc/nginx/sites-enabled/app", 7),
    ]


# -- the probe's own handshake ----------------------------------------------------------------------------------


async def handshake(port: int, ca_file: str | None) -> tuple[list[TlsSeen | BaseException], Exception | None]:
    seen: list[TlsSeen | BaseException] = []
    opener = public_opener("https", "localhost", port, timeout=5, ca_file=ca_file, tls_sink=seen.append)
    try:
        stream = await opener()
        await stream.aclose()
    except Exception as exc:
        return seen, exc
    return seen, None


async def test_valid_certificate_seen_in_the_probes_own_handshake(pki: Pki, serve: Any, tmp_path: Path) -> None:
    pem, key, cert = pki.leaf()
    port = await serve(pem, key)
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    seen, error = await handshake(port, str(tmp_path / "ca.pem"))
    assert error is None
    (one,) = seen
    assert isinstance(one, TlsSeen) and one.error is None and one.cert is not None
    assert one.cert.serial == f"{cert.serial_number:X}" and one.version.startswith("TLS")


@pytest.mark.parametrize(("names", "before", "after", "with_ca", "kind"), [
    (("localhost",), -91, -1, True, "expired"),
    (("localhost",), 2, 90, True, "not_yet_valid"),
    (("chat.other.test",), -1, 90, True, "wrong_name"),
    (("localhost",), -1, 90, False, "untrusted"),
])
async def test_refused_certificate_is_named_and_still_described(
        pki: Pki, serve: Any, tmp_path: Path, names: tuple[str, ...], before: float, after: float, with_ca: bool,
        kind: str) -> None:
    pem, key, cert = pki.leaf(names, before=before, after=after)
    port = await serve(pem, key)
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    seen, error = await handshake(port, str(tmp_path / "ca.pem") if with_ca else None)
    assert isinstance(error, ProbeTlsError)
    (one,) = seen
    assert isinstance(one, TlsSeen) and one.error == kind, one
    assert one.cert is not None and one.cert.serial == f"{cert.serial_number:X}"
    assert one.message  # OpenSSL's own words are kept


async def test_plain_http_on_the_https_port_is_a_handshake_failure_not_refused() -> None:
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        seen, error = await handshake(port_of(server), None)
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(error, ProbeTlsError)
    assert isinstance(seen[0], TlsSeen) and seen[0].error == "handshake" and seen[0].cert is None


# -- tls.certificate over FunctionTransport (commands) + the real TLS server (probe) --------------------------

SITE = "/etc/nginx/sites-enabled/chat"
CERT_PATH = "/etc/letsencrypt/live/chat/fullchain.pem"


def dump() -> str:
    return (f"# configuration file /etc/nginx/nginx.conf:\nhttp {{\n    include {SITE};\n}}\n\n"
            f"# configuration file {SITE}:\nserver {{\n    listen 443 ssl;\n    server_name localhost;\n"
            f"    ssl_certificate {CERT_PATH};\n    ssl_certificate_key /etc/letsencrypt/live/chat/privkey.pem;\n"
            "    location / {\n        proxy_pass http://127.0.0.1:3003;\n    }\n}\n")


def transport(disk_pem: bytes, *, certbot: bool) -> tuple[FunctionTransport, list[tuple[str, ...]]]:
    ran: list[tuple[str, ...]] = []

    def handler(argv: tuple[str, ...]) -> CommandResult:
        ran.append(argv)
        if argv[:2] == ("nginx", "-T"):
            return CommandResult(argv, 0, dump(), "nginx: configuration file /etc/nginx/nginx.conf test is "
                                 "successful", 1.0)
        if argv == ("cat", "--", CERT_PATH):
            return CommandResult(argv, 0, disk_pem.decode(), "", 1.0)
        if argv[:3] == ("stat", "-c", "%n|%Y|%s"):
            out = "/usr/bin/certbot|1700000000|123\n" if certbot and "/usr/bin/certbot" in argv else ""
            return CommandResult(argv, 0 if out else 1, out, "stat: cannot statx: No such file", 1.0)
        return CommandResult(argv, 127, "", "not in this test", 1.0)

    return FunctionTransport(handler), ran


def https_target(port: int, ca_file: str, **extra: Any) -> Target:
    return Target(name="chat", pm2_app="chat", app_port=3003, app_dir="/srv/chat",
                  public_url=f"https://localhost:{port}/", ca_file=ca_file, **extra)


async def tls_only(target: Target, fake: FunctionTransport) -> CheckResult:
    report = await run_checks(target, fake, ["tls.certificate"])
    (result,) = report.checks
    return result


async def test_check_reads_the_file_nginx_names_and_sees_it_served(pki: Pki, serve: Any, tmp_path: Path) -> None:
    pem, key, cert = pki.leaf()
    port = await serve(pem, key)
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    fake, ran = transport(pem, certbot=False)
    result = await tls_only(https_target(port, str(tmp_path / "ca.pem")), fake)
    assert result.status is Status.OK, result
    assert result.details["cert"]["serial"] == f"{cert.serial_number:X}"
    assert result.details["disk"][0]["cert"]["serial"] == f"{cert.serial_number:X}"
    assert "not_reloaded" not in result.details and result.details["certbot"] == ""
    assert ("cat", "--", CERT_PATH) in ran


async def test_check_renewed_but_not_reloaded_and_certbot_found(pki: Pki, serve: Any, tmp_path: Path) -> None:
    old_pem, old_key, _ = pki.leaf(before=-80, after=10)
    new_pem, _, new = pki.leaf()
    port = await serve(old_pem, old_key)
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    fake, _ = transport(new_pem, certbot=True)
    target = https_target(port, str(tmp_path / "ca.pem"))
    result = await tls_only(target, fake)
    assert result.status is Status.WARN, result
    assert result.details["not_reloaded"]["serial"] == f"{new.serial_number:X}"
    assert result.details["certbot"] == "/usr/bin/certbot"
    (cause,) = diagnose(target, [result])
    assert cause.cause == "tls_certificate_not_reloaded" and cause.severity is Status.WARN
    assert cause.fix == ("nginx -t", "nginx -s reload")


async def test_check_expiring_uses_the_targets_window(pki: Pki, serve: Any, tmp_path: Path) -> None:
    pem, key, _ = pki.leaf(before=-85, after=5)
    port = await serve(pem, key)
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    fake, _ = transport(pem, certbot=True)
    target = https_target(port, str(tmp_path / "ca.pem"))
    result = await tls_only(target, fake)
    assert result.status is Status.WARN and result.details["expiring"] is True
    (cause,) = diagnose(target, [result])
    assert cause.cause == "tls_certificate_expiring" and cause.fix[0] == "/usr/bin/certbot renew"
    relaxed = await tls_only(https_target(port, str(tmp_path / "ca.pem"), tls_expiry_warning=3), fake)
    assert relaxed.status is Status.OK


async def test_http_public_url_has_no_certificate() -> None:
    fake, ran = transport(b"", certbot=False)
    target = Target(name="chat", pm2_app="chat", app_port=3003, app_dir="/srv/chat",
                    public_url="http://203.0.113.10/")
    result = await tls_only(target, fake)
    assert result.status is Status.OK and result.details == {"tls": False}
    assert ran == []  # no command at all for an http site


# -- diagnosis ---------------------------------------------------------------------------------------------------

T = Target(name="chat", pm2_app="chat", app_port=3003, app_dir="/srv/chat", public_url="https://chat.example.com/")
CERT = {"subject": "CN=chat.example.com", "issuer": "CN=R11,O=Let's Encrypt", "sans": ["chat.example.com"],
        "serial": "ABC", "not_after": "2026-01-01T00:00:00+00:00"}


def r(check_id: str, verdict: Status, **details: Any) -> CheckResult:
    return CheckResult(id=check_id, status=verdict, summary=check_id, details=details)


def test_the_new_causes_are_known() -> None:
    assert {"tls_certificate_invalid", "tls_certificate_expiring", "tls_certificate_not_reloaded",
            "ws_upgrade_redirected"} <= set(CAUSES)


def test_expired_certificate_is_never_nginx_not_running() -> None:
    results = [r("http.proxy", Status.FAIL, tls_error="expired"), r("ws.proxy", Status.FAIL, tls_error="expired"),
               r("tls.certificate", Status.FAIL, verify_error="expired", cert=CERT, host="chat.example.com",
                 certbot="/usr/bin/certbot")]
    (cause,) = diagnose(T, results)
    assert cause.cause == "tls_certificate_invalid"
    assert cause.evidence == ("tls.certificate", "http.proxy", "ws.proxy")
    assert cause.fix == ("/usr/bin/certbot renew", "nginx -t", "nginx -s reload")


def test_untrusted_chain_fix_is_the_chain_or_the_ca() -> None:
    results = [r("tls.certificate", Status.FAIL, verify_error="untrusted", cert=CERT, host="chat.example.com")]
    (cause,) = diagnose(T, results)
    assert cause.cause == "tls_certificate_invalid"
    assert [m.key for m in cause.fixes][:2] == ["fix.tls_chain", "fix.tls_ca_file"]


def test_a_handshake_failure_without_certificate_is_not_a_certificate_cause() -> None:
    results = [r("http.proxy", Status.FAIL, tls_error="handshake"),
               r("tls.certificate", Status.FAIL, verify_error="handshake", host="chat.example.com")]
    assert [c.cause for c in diagnose(T, results)] == ["unknown"]


def test_not_reloaded_wins_over_invalid_and_fails_when_the_served_one_is_invalid() -> None:
    results = [r("http.proxy", Status.FAIL, tls_error="expired"),
               r("tls.certificate", Status.FAIL, verify_error="expired", cert=CERT, host="chat.example.com",
                 not_reloaded={"path": "/etc/x/fullchain.pem", "file": SITE, "line": 5, "serial": "DEF",
                               "not_after": "2026-04-01T00:00:00+00:00"})]
    (cause,) = diagnose(T, results)
    assert cause.cause == "tls_certificate_not_reloaded" and cause.severity is Status.FAIL
    assert "/etc/x/fullchain.pem" in cause.summary and f"{SITE}:5" in cause.summary


def test_ws_redirect_names_the_block_and_http_to_https() -> None:
    plain = Target(name="chat", pm2_app="chat", app_port=3003, app_dir="/srv/chat", public_url="http://chat.example.com/")
    ws = r("ws.proxy", Status.FAIL, status=301, redirect=True, location="https://chat.example.com/ws",
           to_https=True, url="ws://chat.example.com/ws", sent_by={"server": f"{SITE}:1", "location": f"{SITE}:9"})
    nginx = r("nginx.websocket", Status.FAIL, reason="redirect")
    (cause,) = diagnose(plain, [ws, nginx])
    assert cause.cause == "ws_upgrade_redirected" and cause.evidence == ("ws.proxy", "nginx.websocket")
    assert "http->https redirect" in cause.summary and f"{SITE}:9" in cause.summary
    same_scheme = r("ws.proxy", Status.FAIL, status=301, redirect=True, location="/ws/", to_https=False,
                    url="ws://chat.example.com/ws")
    (cause,) = diagnose(plain, [same_scheme])
    assert cause.cause == "ws_upgrade_redirected" and "http->https" not in cause.summary


# -- the setting -------------------------------------------------------------------------------------------------


def test_expiry_warning_setting_reaches_targets_without_their_own(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from bot.settings import load_config, tls_expiry_warning_default
    from checks.config import ConfigError

    config = tmp_path / "wscheck.toml"
    config.write_text('tls_expiry_warning = 21\n'
                      '[[targets]]\nname = "a"\npm2_app = "a"\napp_port = 3000\napp_dir = "/srv/a"\n'
                      '[[targets]]\nname = "b"\npm2_app = "b"\napp_port = 3001\napp_dir = "/srv/b"\n'
                      'tls_expiry_warning = 7\n')
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("WSCHECK_TLS_EXPIRY_WARNING", raising=False)
    _, targets = load_config(config)
    assert [t.tls_expiry_warning for t in targets.targets] == [21, 7]
    monkeypatch.setenv("WSCHECK_TLS_EXPIRY_WARNING", "30")
    _, targets = load_config(config)
    assert [t.tls_expiry_warning for t in targets.targets] == [30, 7]  # the environment wins over the file
    assert tls_expiry_warning_default() == 30
    monkeypatch.setenv("WSCHECK_TLS_EXPIRY_WARNING", "2w")
    with pytest.raises(ConfigError, match="WSCHECK_TLS_EXPIRY_WARNING"):
        tls_expiry_warning_default()
    with pytest.raises(ConfigError, match="WSCHECK_TLS_EXPIRY_WARNING"):
        load_config(config)


def test_ws_redirect_from_the_route_model_alone() -> None:
    """Only the nginx item ran: nginx's own route for ws_path ends in a redirect; the same cause, from the config."""
    plain = Target(name="chat", pm2_app="chat", app_port=3003, app_dir="/srv/chat", public_url="http://chat.example.com/")
    nginx = r("nginx.websocket", Status.FAIL, reason="redirect", status=301, location_header="https://chat.example.com/ws",
              request="http://chat.example.com:80/ws", file=SITE, line=4)
    (cause,) = diagnose(plain, [nginx, r("nginx.syntax", Status.OK)])
    assert cause.cause == "ws_upgrade_redirected" and cause.evidence == ("nginx.websocket",)
    assert "http->https redirect" in cause.summary and f"{SITE}:4" in cause.summary
