"""`iot-edge simulate --protocol opcua|modbus` as a real subprocess, with the connectors file it
writes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.process import ROOT, free_port
from tests.support.waiting import wait_until


class IndustrialSimulator:
    def __init__(self, protocol: str, workdir: Path, *, rate_hz: float = 5.0) -> None:
        self.protocol = protocol
        self.port = free_port()
        self.connectors_file = workdir / f"connectors-{protocol}.yaml"
        self.log_path = workdir / f"simulate-{protocol}.log"
        self.rate_hz = rate_hz
        self.proc: subprocess.Popen[bytes] | None = None

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"simulator exited: {self.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self.connectors_file.exists()
        except OSError:
            return False

    def start(self) -> IndustrialSimulator:
        workdir = self.log_path.parent
        workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "edge_gateway.cli", "simulate",
                    "--protocol", self.protocol,
                    "--listen", f"127.0.0.1:{self.port}",
                    "--connectors-file", str(self.connectors_file),
                    "--rate", str(self.rate_hz),
                    "--anomaly-probability", "0",
                ],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._listening, 60, f"the {self.protocol} simulator ({self.log_path})")
        return self

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        return self.proc.returncode
