"""Required fields: a request that leaves out a field its model requires is refused, naming the field.

proto3 has no ``required``: a field that is not sent reads as 0, "" or false, so a client that forgets
``sepal_length`` gets a confident answer about a flower of length 0. A bundle's ``metadata.json`` may
list, per message, the fields a request must set (docs/bundle.md, "Required fields")::

    "required": {"IrisInput": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}

Only a field that has *presence* can be checked, so the rule is: each required field is a proto3
``optional`` scalar, a message field, or a member of no oneof; a real oneof may be named itself (then
one of its members must be set). Repeated and map fields cannot be required (an empty list and a
missing one are the same bytes). :meth:`RequiredFields.build` refuses anything else with
InvalidBundle, listing every problem.

A message's rule applies wherever that message appears in an rpc's input: at the top, inside a set
message field, in each element of a repeated field and each value of a map. Outputs are not checked.

The check is one dict lookup for an rpc without required fields; otherwise a few ``HasField`` calls
on the parsed request (binary requests are parsed for it only then).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from runner.contract.codec import proto3_optional_fields
from runner.contract.contract import Contract
from runner.contract.media import MEDIA_PROTOBUF
from runner.errors import BadInput, InvalidBundle

_SINGLE, _REPEATED, _MAP = 0, 1, 2
_MAX_REPORTED = 20  # missing paths named in one error (a batch of 10,000 bad rows names the first 20)

MISSING_HINT = (
    "send every required field, even when its value is 0, false or empty: proto3 cannot tell a field "
    "that was not sent from one that is 0, so this model refuses to guess"
)


@dataclass(frozen=True)
class _Rule:
    """What a message of one type must hold, and which of its message fields to look into."""

    members: tuple[tuple[str, bool], ...]  # (name, is a oneof): a field with presence / a oneof to set
    children: tuple[tuple[str, int, str], ...]  # (field, _SINGLE/_REPEATED/_MAP, message full name)


class RequiredFields:
    """The required fields of one contract version, compiled per rpc (see the module docstring)."""

    def __init__(
        self,
        contract: Contract | None = None,
        rules: Mapping[str, _Rule] | None = None,
        roots: Mapping[str, str] | None = None,
        spec: Mapping[str, Sequence[str]] | None = None,
        unchecked: Sequence[str] = (),
    ):
        self.contract = contract
        self._rules = dict(rules or {})
        self._roots = dict(roots or {})  # rpc -> full name of its input message, when it has rules
        self.spec = {k: list(v) for k, v in (spec or {}).items()}
        """message full name -> its required field (and oneof) names, as resolved from metadata."""
        self.unchecked = list(unchecked)
        """Messages listed in ``required`` that no rpc input contains: nothing checks them."""

    @classmethod
    def build(cls, contract: Contract, spec: Mapping[str, Sequence[str]] | None) -> RequiredFields:
        """Resolve metadata's ``required`` (message name -> field names) against ``contract``.

        Message names are as written in the .proto (``IrisInput``, ``Outer.Inner``) or fully qualified
        (``iris.IrisInput``). InvalidBundle lists every name that is unknown or cannot be required."""
        if not spec:
            return NO_REQUIRED_FIELDS
        problems: list[str] = []
        resolved: dict[str, list[str]] = {}
        for key, names in spec.items():
            desc = _find_message(contract, key)
            if desc is None:
                problems.append(_unknown_message(contract, key))
                continue
            optional = proto3_optional_fields(desc)
            real_oneofs = {o.name: o for o in desc.oneofs if not _synthetic(o.fields, optional)}
            good: list[str] = []
            for name in names:
                where = f"required.{key}.{name}"
                field = desc.fields_by_name.get(name)
                if field is None:
                    if name in real_oneofs:
                        good.append(name)
                        continue
                    problems.append(_unknown_field(where, desc, name))
                    continue
                problem = _presence_problem(where, field, optional)
                if problem:
                    problems.append(problem)
                else:
                    good.append(name)
            resolved.setdefault(desc.full_name, [])
            resolved[desc.full_name] += [n for n in good if n not in resolved[desc.full_name]]
        if problems:
            raise InvalidBundle(
                "metadata.json: " + "; ".join(problems),
                {"file": "metadata.json", "problems": problems},
            )
        return cls._compile(contract, resolved)

    @classmethod
    def _compile(cls, contract: Contract, spec: dict[str, list[str]]) -> RequiredFields:
        pool = contract.pool
        reached: set[str] = set()
        for m in contract.service.methods:
            _reachable(m.input_type, reached)
        # a type needs a look when it has rules or a message field of a type that needs one
        needs = {name for name in spec if name in reached and spec[name]}
        changed = True
        while changed:
            changed = False
            for name in reached - needs:
                if any(sub in needs for _f, _s, sub in _message_fields(pool.FindMessageTypeByName(name))):
                    needs.add(name)
                    changed = True
        rules: dict[str, _Rule] = {}
        for name in needs:
            desc = pool.FindMessageTypeByName(name)
            own = spec.get(name, [])
            rules[name] = _Rule(
                members=tuple((n, n not in desc.fields_by_name) for n in own),
                children=tuple(c for c in _message_fields(desc) if c[2] in needs),
            )
        roots = {
            m.name: m.input_type.full_name
            for m in contract.service.methods
            if m.input_type.full_name in needs
        }
        unchecked = sorted(name for name in spec if name not in reached)
        return cls(contract, rules, roots, spec, unchecked)

    # ---- the checks ----------------------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self._roots)

    def methods(self) -> list[str]:
        """The rpcs whose requests are checked."""
        return sorted(self._roots)

    def check(self, method: str, message: Message) -> None:
        """BadInput naming every required field ``message`` (the input of ``method``) leaves out."""
        root = self._roots.get(method)
        if root is None:
            return
        missing: list[str] = []
        self._collect(message, self._rules[root], "", missing)
        if missing:
            raise missing_fields(root, missing)

    def check_wire(self, method: str, payload: bytes | bytearray | memoryview) -> None:
        """:meth:`check` on a binary request; parses it only when ``method`` has required fields
        (BadInput when the bytes are not its input message)."""
        if method not in self._roots or self.contract is None:
            return
        cls = self.contract.input_class(method)
        self.check(method, self.contract.decode(cls, payload, MEDIA_PROTOBUF[0]))

    def fill(self, method: str, message: Message) -> Message:
        """Set every required field ``message`` lacks to its default value (0, "", false, an empty
        message; a oneof's first member), in place: the default input a validation run sends."""
        root = self._roots.get(method)
        if root is not None:
            self._fill(message, root)
        return message

    def _collect(self, msg: Any, rule: _Rule, prefix: str, out: list[str]) -> None:
        for name, oneof in rule.members:
            if (msg.WhichOneof(name) is None) if oneof else not msg.HasField(name):
                out.append(prefix + name)
        for name, shape, sub in rule.children:
            if len(out) >= _MAX_REPORTED:
                return
            sub_rule = self._rules[sub]
            if shape == _SINGLE:
                if msg.HasField(name):
                    self._collect(getattr(msg, name), sub_rule, f"{prefix}{name}.", out)
            elif shape == _REPEATED:
                for i, item in enumerate(getattr(msg, name)):
                    self._collect(item, sub_rule, f"{prefix}{name}[{i}].", out)
                    if len(out) >= _MAX_REPORTED:
                        return
            else:
                for key, item in getattr(msg, name).items():
                    self._collect(item, sub_rule, f"{prefix}{name}[{key!r}].", out)
                    if len(out) >= _MAX_REPORTED:
                        return

    def _fill(self, msg: Any, full_name: str) -> None:
        rule = self._rules[full_name]
        desc = msg.DESCRIPTOR
        for name, oneof in rule.members:
            if oneof and msg.WhichOneof(name) is None:
                _set_default(msg, desc.oneofs_by_name[name].fields[0])
            elif not oneof and not msg.HasField(name):
                _set_default(msg, desc.fields_by_name[name])
        for name, shape, sub in rule.children:
            if shape == _SINGLE:
                if msg.HasField(name):
                    self._fill(getattr(msg, name), sub)
            else:
                items = getattr(msg, name)
                for item in items.values() if shape == _MAP else items:
                    self._fill(item, sub)


NO_REQUIRED_FIELDS = RequiredFields()
"""Nothing required: every check returns at once."""


def missing_fields(message: str, missing: Sequence[str]) -> BadInput:
    """The error of a request (a ``message``) that leaves out required fields (paths from its top)."""
    shown = list(missing[:_MAX_REPORTED])
    names = ", ".join(shown) + (", ..." if len(missing) >= _MAX_REPORTED else "")
    plural = "s" if len(shown) > 1 else ""
    return BadInput(
        f"missing required field{plural} {names} (in {message})",
        {"message": message, "field": shown[0], "path": shown[0], "missing": shown, "hint": MISSING_HINT},
    )


# ---- resolution -------------------------------------------------------------------------------------


def _find_message(contract: Contract, key: str) -> Descriptor | None:
    names = [f"{contract.package}.{key}", key] if contract.package else [key]
    for name in names:
        try:
            desc: Descriptor = contract.pool.FindMessageTypeByName(name.lstrip("."))
        except KeyError:
            continue
        if not desc.GetOptions().map_entry:
            return desc
    return None


def _unknown_message(contract: Contract, key: str) -> str:
    rpc = contract.service.methods_by_name.get(key)
    if rpc is not None:
        return (
            f"required.{key}: {key} is an rpc; name the message instead "
            f"(its input is {_short(contract, rpc.input_type)})"
        )
    known = ", ".join(
        sorted(_short(contract, d) for d in contract.messages().values() if not d.GetOptions().map_entry)
    )
    return f"required.{key}: the contract has no message {key} (messages: {known})"


def _unknown_field(where: str, desc: Descriptor, name: str) -> str:
    by_json = {f.json_name: f.name for f in desc.fields}
    if name in by_json:
        return f"{where}: name the field as the .proto does: {by_json[name]}"
    fields = ", ".join(f.name for f in desc.fields)
    return f"{where}: {desc.full_name} has no field {name} (fields: {fields})"


def _presence_problem(where: str, field: FieldDescriptor, optional: frozenset[str]) -> str | None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return f"{where}: a map cannot be required (proto3 sends an empty map and a missing one alike)"
    if field.is_repeated:
        return (
            f"{where}: a repeated field cannot be required (proto3 sends an empty list and a missing "
            "one alike)"
        )
    oneof = field.containing_oneof
    if oneof is not None and field.name not in optional:
        return (
            f"{where}: {field.name} is a member of oneof {oneof.name}: require the oneof instead "
            f'("{oneof.name}": one of its fields must be set)'
        )
    if not field.has_presence:
        decl = f"optional {_type_name(field)} {field.name} = {field.number};"
        return (
            f"{where}: a required {_type_name(field)} needs presence: declare it `{decl}` in model.proto "
            f"(without `optional`, proto3 cannot tell a missing {field.name} from {_zero(field)})"
        )
    return None


def _synthetic(fields: Sequence[FieldDescriptor], optional: frozenset[str]) -> bool:
    return len(fields) == 1 and fields[0].name in optional


def _type_name(field: FieldDescriptor) -> str:
    if field.enum_type is not None:
        return field.enum_type.name
    names = {
        getattr(FieldDescriptor, n): n[len("TYPE_") :].lower()
        for n in dir(FieldDescriptor)
        if n.startswith("TYPE_") and isinstance(getattr(FieldDescriptor, n), int)
    }
    return names.get(field.type, "scalar")


def _zero(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "false"
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return "empty"
    if field.enum_type is not None:
        return f"{field.enum_type.values[0].name}" if field.enum_type.values else "0"
    return "0"


def _short(contract: Contract, desc: Descriptor) -> str:
    prefix = f"{contract.package}." if contract.package else ""
    name: str = desc.full_name
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def _message_fields(desc: Descriptor) -> list[tuple[str, int, str]]:
    """(field, shape, message full name) of each field of ``desc`` holding messages."""
    out = []
    for f in desc.fields:
        mt = f.message_type
        if mt is None:
            continue
        if mt.GetOptions().map_entry:
            vt = mt.fields_by_name["value"].message_type
            if vt is not None:
                out.append((f.name, _MAP, vt.full_name))
        else:
            out.append((f.name, _REPEATED if f.is_repeated else _SINGLE, mt.full_name))
    return out


def _reachable(desc: Descriptor, seen: set[str]) -> None:
    stack = [desc]
    while stack:
        d = stack.pop()
        if d.full_name in seen:
            continue
        seen.add(d.full_name)
        for f in d.fields:
            if f.message_type is not None:
                stack.append(f.message_type)


def _set_default(msg: Any, field: FieldDescriptor) -> None:
    if field.message_type is not None:
        getattr(msg, field.name).SetInParent()
    else:
        setattr(msg, field.name, field.default_value)


def declare_presence(proto_text: str, contract: Contract, fields: Mapping[str, Sequence[str]]) -> str:
    """``proto_text`` (compiled: ``contract``) with the given scalar fields (message full name -> field
    names) declared proto3 ``optional``, so that they can be required. For contracts as the generators
    write them: each message at the top level of the file, defining no message or enum of its own. A
    field not found that way is left as it was (compile the result to see which fields have presence)."""
    text = proto_text
    for full_name, names in fields.items():
        short = _short(contract, contract.pool.FindMessageTypeByName(full_name))
        head = re.search(rf"(?m)^\s*message\s+{re.escape(short)}\s*\{{", text)
        if head is None:
            continue
        depth, end = 1, head.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        body = text[head.end() : end - 1]
        if depth or re.search(r"\b(message|enum)\s", body):
            continue
        for name in names:
            body = re.sub(
                rf"(?<![\w.])((?:optional|repeated)\s+)?([A-Za-z_][\w.]*\s+{re.escape(name)}\s*=\s*\d+\s*;)",
                lambda m: m.group(0) if m.group(1) else "optional " + m.group(2),
                body,
                count=1,
            )
        text = text[: head.end()] + body + text[end - 1 :]
    return text
