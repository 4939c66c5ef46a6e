"""Command forms in neutral terms: what a form asks, and reading what came back. Pure.

The hub ring (bridge/command_forms.py) says which forms exist and fills in their choices;
a backend renders them its own way (XMPP: XEP-0004 data forms inside XEP-0050 ad-hoc
commands, bridge/backends/xmpp/adhoc.py) and hands back the values as text, one per field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class FieldKind(StrEnum):
    CHOICE = "choice"  # one of `choices`
    LINE = "line"  # a line of text
    TEXT = "text"  # text of several lines
    FLAG = "flag"  # yes or no; read as "1" when yes, left out when no


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: FieldKind
    required: bool = True
    choices: tuple[Choice, ...] = ()
    default: str = ""


@dataclass(frozen=True)
class MenuEntry:
    """A form an agent may open: its command's name and a title for menus."""

    command: str
    title: str


@dataclass(frozen=True)
class Form:
    """What one command asks before it runs; no fields: it runs as soon as it is opened."""

    command: str
    title: str
    instructions: str
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """How a form ended: the text for the agent, and whether anything was refused."""

    text: str
    failed: bool = False


class FormError(ValueError):
    """Values that do not fit their form; the text says which field and why."""


def read_values(form: Form, values: Mapping[str, str]) -> dict[str, str]:
    """The form's values, stripped, checked against its fields: required ones filled in,
    choices among the form's own. Fields the form does not have are ignored."""
    read: dict[str, str] = {}
    for field in form.fields:
        value = values.get(field.name, "").strip()
        if field.kind is FieldKind.FLAG:
            value = "1" if value.lower() in ("1", "true") else ""
        if not value:
            if field.required:
                raise FormError(f"{field.label}: this field is required.")
            continue
        if field.kind is FieldKind.CHOICE and value not in {c.value for c in field.choices}:
            raise FormError(f"{field.label}: {value!r} is not one of the choices (it may "
                            "have changed meanwhile; open the form again).")
        read[field.name] = value
    return read


def choice_position(field: Field, value: str) -> int:
    """Where `value` stands among the field's choices, counted from 1."""
    return [c.value for c in field.choices].index(value) + 1
