"""Run `iot-edge run` as a real subprocess, as an operator would, and talk to its status API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.mqtt import forget_session as mqtt_forget_session
from tests.support.process import ServiceProcess, free_port


class GatewayProcess(ServiceProcess):
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.http_port = int(env.get("EDGE_HTTP_PORT") or free_port())
        super().__init__(
            "gateway",
            ["-m", "edge_gateway.cli", "run"],
            workdir / "gateway.log",
            {
                **os.environ,
                "EDGE_HTTP_HOST": "127.0.0.1",
                "EDGE_MQTT_BIND": "127.0.0.1",
                "EDGE_BUFFER_PATH": str(workdir / "buffer.db"),
                "EDGE_METRICS_INTERVAL_S": "1",
                "EDGE_GATEWAY_ID": f"gw-{uuid.uuid4().hex[:8]}",
                **env,
                "EDGE_HTTP_PORT": str(self.http_port),
            },
            f"http://127.0.0.1:{self.http_port}",
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/v1/status")
        assert code == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60, *, forget_session: bool = True) -> int:
        """SIGTERM and wait; then, on an external broker, end the bridge's persistent session
        so the broker does not queue messages for it ever after."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise
        url = self.env.get("EDGE_MQTT_URL")
        if forget_session and url:
            parts = urlsplit(url)
            client_id = (
                self.env.get("EDGE_MQTT_CLIENT_ID") or f"bridge-{self.env['EDGE_GATEWAY_ID']}"
            )
            mqtt_forget_session(parts.hostname or "127.0.0.1", parts.port or 1883, client_id)
        return self.proc.returncode
