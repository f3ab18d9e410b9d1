"""A Mosquitto of the test's own with a TLS listener: its own config, certificates, port and
process (started and stopped by its pid), beside whatever scripts/services runs."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.certs import CertAuthority
from tests.support.process import free_port
from tests.support.waiting import wait_until


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


class TlsMosquitto:
    """`listener PORT 127.0.0.1` with the CA's server certificate; `require_certificate`: clients
    must present a certificate the CA signed. Anonymous clients are allowed: TLS is under test."""

    def __init__(
        self, workdir: Path, ca: CertAuthority, *, require_certificate: bool = True
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.ca = ca
        self.host = "localhost"  # the name the certificate carries, checked by the clients
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        server = ca.issue("mosquitto", ("localhost", "127.0.0.1"))
        self._probe = ca.issue("mosquitto-probe", client=True)
        user = "user root\n" if os.geteuid() == 0 else ""
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"{user}per_listener_settings false\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {self.log_path}\n"
            "connection_messages true\n"
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {ca.cert}\n"
            f"certfile {server.cert}\n"
            f"keyfile {server.key}\n"
            f"require_certificate {'true' if require_certificate else 'false'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def start(self) -> Self:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto not found: scripts/services install mosquitto")
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._handshakes, 15, f"Mosquitto TLS on port {self.port}")
        return self

    def _handshakes(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{log}")
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(self._probe.cert, self._probe.key)
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw,
                context.wrap_socket(raw, server_hostname=self.host),
            ):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
