"""A real asyncua OPC UA server for the connector tests: a `Press1` object with a few variables,
optionally requiring a user name and password."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import CertificateUserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

NAMESPACE = "urn:iot-monitoring:test"


class _Passwords:
    """asyncua UserManager: users by name and password."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


async def make_certificate(key: Path, cert: Path, app_uri: str, *, server: bool) -> None:
    """A self-signed OPC UA application certificate (DER) and its key (PEM)."""
    use = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    await setup_self_signed_certificate(
        key, cert, app_uri, "localhost", [use], {"organizationName": "iot-monitoring tests"}
    )


@dataclass
class OpcUaTestServer:
    port: int
    users: dict[str, str] | None = None
    # Basic256Sha256 SignAndEncrypt only, with this certificate and key (DER, PEM).
    secure: tuple[Path, Path] | None = None
    # With `secure`: users are these certificates (X509 identity tokens), no one else.
    user_certificates: list[Path] | None = None
    server: Server = field(init=False)
    variables: dict[str, Any] = field(default_factory=dict)
    ns: int = 0

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/test/"

    async def start(self) -> None:
        manager: Any = _Passwords(self.users) if self.users else None
        if self.user_certificates:
            manager = CertificateUserManager()
            for i, path in enumerate(self.user_certificates):
                await manager.add_user(path, name=f"user-{i}")
        self.server = Server(user_manager=manager)
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        if self.secure is not None:
            await self.server.load_certificate(str(self.secure[0]))
            await self.server.load_private_key(str(self.secure[1]))
            self.server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.users:
            self.server.set_security_IDs(["Username"])
        if self.user_certificates:
            # Only X509 user tokens: an anonymous session is refused.
            self.server.set_identity_tokens([ua.X509IdentityToken])
        self.ns = await self.server.register_namespace(NAMESPACE)
        press = await self.server.nodes.objects.add_object(
            ua.NodeId("Press1", self.ns), ua.QualifiedName("Press1", self.ns)
        )
        for name, initial in (("Pressure", 10.0), ("Temperature", 20.0), ("Running", True)):
            self.variables[name] = await press.add_variable(
                ua.NodeId(f"Press1.{name}", self.ns), ua.QualifiedName(name, self.ns), initial
            )
        # Units and a range as a PLC's server defines them (OPC UA Part 8: the AnalogItem's
        # EngineeringUnits and EURange properties).
        for name, unit, span in (("Pressure", "bar", (0.0, 400.0)), ("Temperature", "K", None)):
            variable = self.variables[name]
            await variable.add_property(
                ua.NodeId(f"Press1.{name}.EngineeringUnits", self.ns),
                ua.QualifiedName("EngineeringUnits", 0),
                ua.EUInformation(DisplayName=ua.LocalizedText(unit)),
                datatype=ua.NodeId(ua.ObjectIds.EUInformation),
            )
            if span is not None:
                await variable.add_property(
                    ua.NodeId(f"Press1.{name}.EURange", self.ns),
                    ua.QualifiedName("EURange", 0),
                    ua.Range(Low=span[0], High=span[1]),
                    datatype=ua.NodeId(ua.ObjectIds.Range),
                )
        await self.server.start()

    async def write(self, name: str, value: Any) -> None:
        await self.variables[name].write_value(value)

    async def stop(self) -> None:
        await self.server.stop()
