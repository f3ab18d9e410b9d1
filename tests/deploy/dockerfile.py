"""A small reader for the repository's Dockerfile: instructions per build stage, with line
continuations joined and comments dropped; enough to check what the images promise."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_FROM = re.compile(r"^(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    arguments: str


@dataclass
class Stage:
    name: str
    base: str  # an image, or the name of an earlier stage
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass(frozen=True)
class Dockerfile:
    args: dict[str, str]  # ARG defaults before the first FROM
    stages: dict[str, Stage]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        args: dict[str, str] = {}
        stages: dict[str, Stage] = {}
        current: Stage | None = None
        for line in _logical_lines(text):
            keyword, _, rest = line.partition(" ")
            keyword, rest = keyword.upper(), rest.strip()
            if keyword == "FROM":
                match = _FROM.match(rest)
                assert match, f"cannot read FROM {rest!r}"
                name = match["name"] or str(len(stages))
                current = stages[name] = Stage(name, match["image"])
            elif current is None:
                if keyword == "ARG":
                    key, _, default = rest.partition("=")
                    args[key] = default
            else:
                current.instructions.append(Instruction(keyword, rest))
        return cls(args, stages)

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        out = []
        stage: Stage | None = self.stages[name]
        while stage is not None:
            out.append(stage)
            stage = self.stages.get(stage.base)
        return out

    def base_image(self, name: str) -> str:
        image = self.chain(name)[-1].base
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args[m[1]], image)

    def effective(self, name: str, keyword: str) -> str | None:
        """The instruction in force for a stage (USER, HEALTHCHECK, ENTRYPOINT...)."""
        for stage in self.chain(name):
            found = stage.last(keyword)
            if found is not None:
                return found
        return None

    def env(self, name: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for stage in reversed(self.chain(name)):
            for arguments in stage.all("ENV"):
                for pair in shlex.split(arguments):
                    key, _, value = pair.partition("=")
                    env[key] = value
        return env


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return lines
