"""Agent commands: parsing, the registry of what exists, and usage texts. Pure.

A line starting with the prefix (default "!") is a command; "!!text" is the literal line
"!text". Arguments split like a shell (quotes group words). Handlers that act live in
bridge/commands.py; this module only decides what was asked.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field


class CommandError(Exception):
    """A command that cannot run as given; the text goes back to the agents verbatim."""


@dataclass(frozen=True)
class Command:
    """One parsed command line."""

    name: str
    args: tuple[str, ...]
    flags: frozenset[str] = field(default_factory=frozenset)
    rest: str = ""  # everything after the name, as typed (for free text like notes)


@dataclass(frozen=True)
class Literal:
    """A line that starts with the prefix twice: sent as text with one prefix removed."""

    text: str


@dataclass(frozen=True)
class Spec:
    name: str
    usage: str
    summary: str
    in_chat_only: bool = True  # False: about the agent, works in any room shared with the bot


def parse_line(text: str, prefix: str = "!") -> Command | Literal | None:
    """What an agent's line is: a command, a literal, or None for an ordinary line."""
    if not text.startswith(prefix):
        return None
    body = text[len(prefix):]
    if body.startswith(prefix):
        return Literal(body)
    name, _, rest = body.strip().partition(" ")
    if not name:
        raise CommandError(f"a command name follows {prefix!r}; try {prefix}help")
    try:
        words = shlex.split(rest)
    except ValueError:  # a lone quote: an apostrophe ("don't") in free text, most often
        words = rest.split()
    flags = frozenset(w[2:] for w in words if w.startswith("--") and len(w) > 2)
    args = tuple(w for w in words if not (w.startswith("--") and len(w) > 2))
    return Command(name=name.lower(), args=args, flags=flags, rest=rest.strip())


def nearest(name: str, known: list[str], limit: int = 3) -> list[str]:
    """Known names that look like `name`, best first (for "did you mean")."""
    return difflib.get_close_matches(name, known, n=limit, cutoff=0.5)


def unknown(kind: str, name: str, known: list[str], prefix: str = "!") -> CommandError:
    close = nearest(name, known)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listing = f" Known: {', '.join(sorted(known))}." if known and not close else ""
    return CommandError(f"No {kind} {name!r}.{hint}{listing}")


@dataclass
class Registry:
    """The commands that exist, with their usage lines, in the order they were added."""

    prefix: str = "!"
    specs: dict[str, Spec] = field(default_factory=dict)

    def add(self, spec: Spec) -> None:
        if spec.name in self.specs:
            raise ValueError(f"command {spec.name} registered twice")
        self.specs[spec.name] = spec

    def find(self, name: str) -> Spec:
        spec = self.specs.get(name)
        if spec is None:
            raise unknown("command", f"{self.prefix}{name}",
                          [f"{self.prefix}{n}" for n in self.specs], self.prefix)
        return spec

    def usage(self, name: str) -> str:
        spec = self.find(name)
        return f"Usage: {self.prefix}{spec.usage} — {spec.summary}"

    def help_text(self) -> str:
        lines = [f"{self.prefix}{spec.usage} — {spec.summary}" for spec in self.specs.values()]
        lines.append(f"{self.prefix}{self.prefix}text — send a line that starts with "
                     f"{self.prefix!r}")
        return "\n".join(lines)


_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "„": "“", "«": "»", "‘": "’"}


def unquote(text: str) -> str:
    """A text typed inside one pair of quotes, without them (`!canned add hi "Hello!"`);
    any other text as it is, quotes inside it kept."""
    text = text.strip()
    if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        inner = text[1:-1]
        if text[0] not in inner:  # "a" and "b" is two quoted parts, not one
            return inner.strip()
    return text
