"""The embedded MQTT broker (amqtt, MQTT 3.1.1), used when EDGE_MQTT_URL is unset."""

from __future__ import annotations

import argparse
import getpass
import logging
from pathlib import Path
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger("edge.broker")


def broker_config(bind: str, port: int, password_file: Path | None) -> dict[str, Any]:
    if password_file is not None:
        if not password_file.is_file():
            raise FileNotFoundError(f"EDGE_MQTT_PASSWORD_FILE {password_file} does not exist")
        auth: dict[str, Any] = {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_file)}
        }
    else:
        auth = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    # No packet/event logger or $SYS plugins: they cost CPU on every message.
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}"}},
        "plugins": auth,
    }


class EmbeddedBroker:
    def __init__(self, bind: str, port: int, password_file: Path | None = None) -> None:
        self.address = f"{bind}:{port}"
        self._config = broker_config(bind, port, password_file)
        self._broker: Broker | None = None
        self._authenticated = password_file is not None

    async def start(self) -> None:
        self._broker = Broker(self._config)
        await self._broker.start()
        log.info("broker_started", extra={"listen": self.address, "auth": self._authenticated})

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
            log.info("broker_stopped")

    @property
    def running(self) -> bool:
        return self._broker is not None and self._broker.transitions.state == "started"


def hash_password(password: str) -> str:
    from pwdlib import PasswordHash  # amqtt's own dependency; argon2 is what it verifies

    return PasswordHash.recommended().hash(password)


def add_passwd_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "passwd",
        help="add or replace a user in the embedded broker's password file",
        description="Add or replace USER in FILE (argon2 hash), the file EDGE_MQTT_PASSWORD_FILE "
        "points at. The password is read from the prompt, or from stdin with --stdin.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("user")
    parser.add_argument("--stdin", action="store_true", help="read the password from stdin")
    parser.set_defaults(func=_passwd)


def _passwd(args: argparse.Namespace) -> int:
    import sys

    if ":" in args.user:
        print("user names cannot contain ':'", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass()
    if not password:
        print("empty password refused", file=sys.stderr)
        return 2
    path: Path = args.file
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not line.startswith(f"{args.user}:")]
    kept.append(f"{args.user}:{hash_password(password)}")
    path.write_text("\n".join(kept) + "\n")
    path.chmod(0o600)
    print(f"{'updated' if len(kept) == len(lines) else 'added'} user {args.user} in {path}")
    return 0
