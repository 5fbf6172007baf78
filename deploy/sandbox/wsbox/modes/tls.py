"""TLS and redirects (wt-tls); needs `cryptography`, imported on first use."""

from __future__ import annotations

import socket
from typing import Any

from ..consts import TLS_HOST, SandboxError
from ..proc import _days, _utcnow, pick_free_port, wait_for, ws_handshake_status


class TlsModes:
    """TLS and redirects (wt-tls); needs `cryptography`, imported on first use.

    A part of `Sandbox` (core.py): it uses the attributes that `Sandbox.__init__` sets.
    """

    # ---- TLS and redirects (wt-tls) -------------------------------------------------------------------

    def _ca(self) -> tuple[Any, Any]:
        """The sandbox's own CA (made once per workdir): certificate and key, as `cryptography` objects.

        `cryptography` is imported here only, so the rest of the sandbox stays standard library: the TLS modes
        need the project's environment (it comes with asyncssh)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key_file = self.tls_dir / "ca.key"
        if self.ca_file.exists() and key_file.exists():
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            return cert, key
        self.tls_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._chown(self.tls_dir)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"wscheck sandbox CA {self.workdir.name}")])
        now = _utcnow()
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _days(1)).not_valid_after(now + _days(3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        self._write_user_file(self.ca_file, cert.public_bytes(serialization.Encoding.PEM).decode())
        return cert, key

    def write_site_cert(self, *, names: tuple[str, ...] = (TLS_HOST, "127.0.0.1"), not_before_days: float = -1,
                        not_after_days: float = 90) -> int:
        """Issue a leaf from the sandbox CA into tls_dir/site.pem (+ site.key) and return its serial.

        Days are relative to now (negative = in the past). Only the files change: nginx serves the new one
        after a reload, exactly like a certbot renewal without a deploy hook."""
        import ipaddress as _ip

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        ca_cert, ca_key = self._ca()
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(_ip.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        now = _utcnow()
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now + _days(not_before_days)).not_valid_after(now + _days(not_after_days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key_text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        self._write_user_file(self.tls_dir / "site.key", key_text)
        (self.tls_dir / "site.key").chmod(0o600)
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
        self._write_user_file(self.tls_dir / "site.pem", chain.decode())
        return int(serial)

    def served_serial(self, timeout: float = 3.0) -> int | None:
        """Serial of the certificate nginx serves on tls_port right now (no verification: any is read)."""
        import ssl

        from cryptography import x509

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((self.host, self.tls_port), timeout=timeout) as sock, \
                    context.wrap_socket(sock, server_hostname=TLS_HOST) as tls:
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError):
            return None
        return int(x509.load_der_x509_certificate(der).serial_number) if der else None

    def _serve_tls(self, live: str, serial: int, *, ws_redirect: bool = False) -> None:
        """Put the TLS server block in the site and reload; return once nginx serves certificate `serial`."""
        if not self.tls_port:
            self.tls_port = pick_free_port(self._ports())
            self._save_state()
        self._write_user_file(self.site_file, self.site_text(tls=True, ws_redirect=ws_redirect))
        test = self.nginx("-t")
        if test.returncode != 0:
            raise SandboxError(f"the TLS site does not pass nginx -t:\n{test.stderr}")
        self._reload_nginx(live, lambda: self.served_serial() == serial,
                           f"nginx to serve certificate {serial:x} on 127.0.0.1:{self.tls_port}")

    def _break_https(self) -> None:
        """Healthy, over https too: a valid certificate for localhost from the sandbox CA (ca_file)."""
        self._serve_tls("https", self.write_site_cert())

    def _break_tls_expired(self) -> None:
        """The served certificate expired yesterday (and nothing newer is on disk)."""
        self._serve_tls("tls-expired", self.write_site_cert(not_before_days=-91, not_after_days=-1))

    def _break_tls_wrong_name(self) -> None:
        """A valid certificate, but for another name than the one public_url uses."""
        self._serve_tls("tls-wrong-name", self.write_site_cert(names=("chat.other.test",)))

    def _break_tls_expiring(self) -> None:
        """Valid, but five days left: under the 14-day warning."""
        self._serve_tls("tls-expiring", self.write_site_cert(not_before_days=-85, not_after_days=5))

    def _break_tls_not_reloaded(self) -> None:
        """nginx serves an expired certificate; the file was renewed since, and nginx never reloaded."""
        self._serve_tls("tls-not-reloaded", self.write_site_cert(not_before_days=-91, not_after_days=-1))
        renewed = self.write_site_cert()
        if self.served_serial() == renewed:
            raise SandboxError("nginx picked up the renewed certificate without a reload")

    def _break_ws_redirect(self) -> None:
        """The plain-http block answers the WebSocket path with an http->https 301 (certbot's port-80 block)."""
        serial = self.write_site_cert()
        self._serve_tls("ws-redirect", serial, ws_redirect=True)
        wait_for("a 301 to the upgrade on the http port", lambda: ws_handshake_status(self.http_port) == 301,
                 timeout=10)

    def tls_target_toml(self, name: str = "sandbox-tls") -> str:
        """The https target of the TLS modes: public_url on tls_port by name, trusting the sandbox CA."""
        text = self.target_toml(name)
        text = text.replace(f'public_url = "http://{self.host}:{self.http_port}/"',
                            f'public_url = "https://{TLS_HOST}:{self.tls_port}/"')
        return text + f'ca_file = "{self.ca_file}"\n'
