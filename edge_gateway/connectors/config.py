"""The EDGE_CONNECTORS_FILE model: validated whole at gateway start, every error naming its field
(`connectors[1].devices[0].registers[3].type: ...`). Pure: reading the file and the secrets it
references is done by `load_connectors_file`, nothing here connects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from protocol.models import METRIC_NAME_PATTERN
from protocol.topics import IDENTIFIER_PATTERN

SETTING = "EDGE_CONNECTORS_FILE"
Identifier = Annotated[str, Field(pattern=f"^{IDENTIFIER_PATTERN}$")]
MetricName = Annotated[str, Field(pattern=METRIC_NAME_PATTERN)]
ModbusType = Literal["int16", "uint16", "int32", "uint32", "float32"]
ModbusTable = Literal["holding", "input", "coil", "discrete_input"]
Order = Literal["big", "little"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Device metadata for the hub (docs/device-metadata.md): the same names and limits as the hub's
# metadata documents. No control characters; "" is as good as unset.
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, Field(max_length=120, pattern=_NO_CONTROL)]
Unit = Annotated[str, Field(max_length=32, pattern=_NO_CONTROL)]
Description = Annotated[str, Field(max_length=1000)]
Range = Annotated[
    list[Annotated[float, Field(ge=-1e15, le=1e15)]],
    Field(min_length=2, max_length=2, description="[min, max]"),
]


class PointMetadata(_Strict):
    """What the hub shows for one value: all optional."""

    display_name: Name | None = Field(default=None, description="Shown beside the metric name.")
    unit: Unit | None = Field(default=None, description="Unit of the value after scaling.")
    description: Description | None = None
    normal: Range | None = Field(default=None, description="[min, max] a healthy device stays in.")
    engineering: Range | None = Field(
        default=None, description="[min, max] the instrument can measure."
    )

    @model_validator(mode="after")
    def _ranges(self) -> PointMetadata:
        for name in ("normal", "engineering"):
            value = getattr(self, name)
            if value is not None and value[0] > value[1]:
                raise ValueError(f"{name}: min {value[0]:g} is greater than max {value[1]:g}")
        return self

    def metadata(self) -> dict[str, object]:
        """The metric's entry of a metadata document (only what is set)."""
        fields = ("display_name", "unit", "description", "normal", "engineering")
        return {k: getattr(self, k) for k in fields if getattr(self, k) not in (None, "")}


class DevicePlace(_Strict):
    """A device's name and place in the plant for the hub: all optional."""

    display_name: Name | None = Field(default=None, description="Shown instead of the device id.")
    area: Name | None = Field(default=None, description="Hierarchy: site > area > line > machine.")
    line: Name | None = None
    machine: Name | None = None

    def place(self) -> dict[str, object]:
        fields = ("display_name", "area", "line", "machine")
        return {k: getattr(self, k) for k in fields if getattr(self, k) not in (None, "")}


class Secret(_Strict):
    """A password by reference, never written in the file: an environment variable or a file
    (a Docker/Kubernetes secret)."""

    env: str | None = Field(default=None, description="Environment variable holding it.")
    file: Path | None = Field(default=None, description="File holding it (trailing newline cut).")

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self


# -- Modbus ------------------------------------------------------------------------------------


class ModbusValue(PointMetadata):
    metric: MetricName = Field(description="Metric name of the reading ([a-z][a-z0-9_]{0,63}).")
    table: ModbusTable = Field(default="holding", description="Register or bit table.")
    address: int = Field(ge=0, le=65535, description="0-based address in the table.")
    type: ModbusType = Field(default="uint16", description="Register data type (not for bits).")
    word_order: Order = Field(default="big", description="32-bit types: high word first = big.")
    byte_order: Order = Field(default="big", description="Within each 16-bit word.")
    scale: float = Field(default=1.0, description="value = raw * scale + offset")
    offset: float = 0.0

    @model_validator(mode="after")
    def _bits_have_no_type(self) -> ModbusValue:
        if self.table in ("coil", "discrete_input") and "type" in self.model_fields_set:
            raise ValueError(f"a {self.table} is a boolean: leave type out")
        return self

    @property
    def is_bit(self) -> bool:
        return self.table in ("coil", "discrete_input")

    @property
    def width(self) -> int:
        """Registers (or bits) the value spans."""
        return 2 if not self.is_bit and self.type in ("int32", "uint32", "float32") else 1


class ModbusDevice(DevicePlace):
    device_id: Identifier
    type: MetricName | None = Field(default=None, description="Device type of its readings.")
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_interval_s: float = Field(default=1.0, ge=0.01, le=3600)
    registers: list[ModbusValue] = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _unique_metrics(self) -> ModbusDevice:
        _check_unique([r.metric for r in self.registers], "registers")
        return self


class ModbusConnector(_Strict):
    name: Identifier
    kind: Literal["modbus"]
    endpoint: str = Field(
        pattern=r"^(modbus\+)?tcp://[^:/]+(:\d{1,5})?/?$",
        description="tcp://host[:port] (port 502 by default).",
    )
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    # Gaps of at most this many unused registers are read in one request rather than split.
    max_gap: int = Field(default=8, ge=0, le=100)
    reconnect_max_s: float = Field(default=30.0, ge=0.1)
    devices: list[ModbusDevice] = Field(min_length=1)

    @property
    def host_port(self) -> tuple[str, int]:
        rest = self.endpoint.split("://", 1)[1].rstrip("/")
        host, _, port = rest.partition(":")
        return host, int(port or 502)


# -- OPC UA ------------------------------------------------------------------------------------


class Deadband(_Strict):
    type: Literal["absolute", "percent"]
    value: float = Field(ge=0)


class OpcUaNode(PointMetadata):
    metric: MetricName
    node_id: str | None = Field(default=None, description="e.g. ns=2;s=Press1.Pressure")
    browse_path: str | None = Field(
        default=None,
        description="From the Objects folder, qualified names joined by /: 2:Press1/2:Pressure.",
    )
    sampling_interval_ms: float = Field(default=1000.0, ge=0)
    deadband: Deadband | None = None

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaNode:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("give exactly one of node_id or browse_path")
        return self


class OpcUaDevice(DevicePlace):
    device_id: Identifier
    type: MetricName | None = None
    nodes: list[OpcUaNode] = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _unique_metrics(self) -> OpcUaDevice:
        _check_unique([n.metric for n in self.nodes], "nodes")
        return self


class OpcUaSecurity(_Strict):
    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = Field(default=None, description="Client certificate (DER/PEM).")
    private_key: Path | None = None
    server_certificate: Path | None = Field(
        default=None, description="Trust this server certificate (unset = the server's own)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(
                "policy None goes with mode None, Basic256Sha256 with Sign or SignAndEncrypt"
            )
        if self.policy != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("Basic256Sha256 needs certificate and private_key")
        return self


class OpcUaAuth(_Strict):
    kind: Literal["anonymous", "username", "certificate"] = "anonymous"
    username: str | None = None
    password: Secret | None = None
    certificate: Path | None = Field(default=None, description="User certificate (certificate).")
    private_key: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> OpcUaAuth:
        if self.kind == "username" and (self.username is None or self.password is None):
            raise ValueError("username authentication needs username and password")
        if self.kind == "certificate" and (self.certificate is None or self.private_key is None):
            raise ValueError("certificate authentication needs certificate and private_key")
        return self


class OpcUaConnector(_Strict):
    name: Identifier
    kind: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port/path")
    security: OpcUaSecurity = OpcUaSecurity()
    auth: OpcUaAuth = OpcUaAuth()
    publishing_interval_ms: float = Field(default=500.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, ge=0.1)
    devices: list[OpcUaDevice] = Field(min_length=1)


Connector = Annotated[ModbusConnector | OpcUaConnector, Field(discriminator="kind")]


class ConnectorsFile(_Strict):
    """What EDGE_CONNECTORS_FILE holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="EdgeConnectors")

    connectors: list[Connector] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ConnectorsFile:
        _check_unique([c.name for c in self.connectors], "connector names")
        devices = [d.device_id for c in self.connectors for d in c.devices]
        _check_unique(devices, "device_id across connectors")
        return self


def _check_unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what}: {value!r}")
        seen.add(value)


# -- loading -----------------------------------------------------------------------------------


class ConnectorsConfigError(ValueError):
    """`str()` is the one line shown to the operator."""


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and isinstance(loc[i - 1], int) and part in ("modbus", "opcua"):
            continue  # the discriminated union's tag, not a field
        else:
            out += ("." if out else "") + part
    return out or "(file)"


def parse_connectors(data: Any) -> ConnectorsFile:
    """Validate parsed YAML; the error names every bad field."""
    if data is None:
        data = {}
    try:
        return ConnectorsFile.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConnectorsConfigError("; ".join(problems)) from None


def load_connectors_file(path: Path) -> ConnectorsFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConnectorsConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConnectorsConfigError(f"{path}: not YAML: {exc}".replace("\n", " ")) from None
    config = parse_connectors(data)
    for i, connector in enumerate(config.connectors):
        if isinstance(connector, OpcUaConnector) and connector.auth.password is not None:
            resolve_secret(connector.auth.password, f"connectors[{i}].auth.password")
    return config


def resolve_secret(secret: Secret, where: str) -> SecretStr:
    if secret.env is not None:
        value = os.environ.get(secret.env)
        if value is None:
            raise ConnectorsConfigError(f"{where}: environment variable {secret.env} is not set")
        return SecretStr(value)
    assert secret.file is not None
    try:
        return SecretStr(secret.file.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ConnectorsConfigError(f"{where}: {secret.file}: {exc.strerror or exc}") from None


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **ConnectorsFile.model_json_schema(),
    }
    return schema
