"""A real Sparkplug B edge node of another project (PyPI `pysparkplug`) as a subprocess, and a
watcher of what the gateway publishes on the broker (NCMD rebirths, STATE)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import venv
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.process import ROOT
from tests.support.waiting import wait_until

PEER_DIR = Path(__file__).resolve().parent / "sparkplug_peer"


def peer_python() -> Path:
    """The python of a venv holding pysparkplug (it needs paho-mqtt<2, the gateway 2), made once
    under IOT_STATE_DIR and reused while its requirements are unchanged."""
    state = Path(os.environ.get("IOT_STATE_DIR") or ROOT / ".local").resolve()
    home = state / "sparkplug-peer-venv"
    python = home / "bin" / "python"
    requirements = (PEER_DIR / "requirements.txt").read_text()
    stamp = home / "requirements.installed"
    state.mkdir(parents=True, exist_ok=True)
    with (state / "sparkplug-peer-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers or two sessions
        if not (stamp.exists() and stamp.read_text() == requirements):
            venv.create(home, with_pip=True, clear=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "-r",
                    str(PEER_DIR / "requirements.txt"),
                ],
                check=True,
                timeout=600,
            )
            stamp.write_text(requirements)
    return python


class PeerNode:
    """pysparkplug's EdgeNode, driven one command at a time (see sparkplug_peer/edge_node.py)."""

    def __init__(self, host: str, port: int, group: str, node: str) -> None:
        self.proc = subprocess.Popen(
            [str(peer_python()), str(PEER_DIR / "edge_node.py"), host, str(port), group, node],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def do(self, command: str) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        if command == "crash":
            self.proc.wait(timeout=30)
            return
        answer = self.proc.stdout.readline().strip()
        if answer != f"ok {command}":
            stderr = (
                self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            )
            raise RuntimeError(f"edge node answered {answer!r} to {command!r}: {stderr}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class Watcher:
    """Subscribes to topics on a broker and keeps what arrives (paho's thread appends)."""

    def __init__(self, host: str, port: int, filters: list[str]) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._client = client
        wait_until(self._subscribed.is_set, 30, f"subscribed to {filters}")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def main() -> int:
    """`python -m tests.support.sparkplug`: make the peer's venv (CI does it before the tests)."""
    print(peer_python())
    return 0


if __name__ == "__main__":
    sys.exit(main())
