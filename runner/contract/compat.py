"""Compatibility of two contract versions: what a new version breaks for clients of the old one."""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from runner.contract.contract import Contract

_TYPE_NAMES: dict[int, str] = {
    getattr(FieldDescriptor, n): n[len("TYPE_") :].lower()
    for n in dir(FieldDescriptor)
    if n.startswith("TYPE_") and isinstance(getattr(FieldDescriptor, n), int)
}


def breaking_changes(old: Contract, new: Contract) -> list[str]:
    """What in ``new`` breaks clients of ``old``: a field's number or type changed, a field, message,
    enum value or rpc removed, an rpc's input or output type changed, the service renamed.
    Additions are compatible. An empty list means the change is safe."""
    out: list[str] = []
    if old.full_service_name != new.full_service_name:
        out.append(f"service renamed: {old.full_service_name} -> {new.full_service_name}")
    new_methods = new.service.methods_by_name
    for m in old.service.methods:
        n = new_methods.get(m.name)
        if n is None:
            out.append(f"rpc {m.name} removed")
            continue
        if m.input_type.full_name != n.input_type.full_name:
            out.append(
                f"rpc {m.name}: input type changed {m.input_type.full_name} -> {n.input_type.full_name}"
            )
        if m.output_type.full_name != n.output_type.full_name:
            out.append(
                f"rpc {m.name}: output type changed {m.output_type.full_name} -> {n.output_type.full_name}"
            )
    old_msgs, new_msgs = old.messages(), new.messages()
    for name, od in old_msgs.items():
        if od.GetOptions().map_entry:
            continue
        nd = new_msgs.get(name)
        if nd is None:
            out.append(f"message {name} removed")
            continue
        new_by_number = {f.number: f for f in nd.fields}
        new_by_name = {f.name: f for f in nd.fields}
        for f in od.fields:
            nf = new_by_number.get(f.number)
            by_name = new_by_name.get(f.name)
            if by_name is not None and by_name.number != f.number:
                out.append(f"field {name}.{f.name}: number changed {f.number} -> {by_name.number}")
                continue
            if nf is None:
                out.append(f"field {name}.{f.name} (= {f.number}) removed")
                continue
            if nf.name != f.name:
                out.append(f"field {name}.{f.name} (= {f.number}) renamed to {nf.name} (breaks JSON clients)")
            if _field_type(nf) != _field_type(f):
                out.append(f"field {name}.{f.name}: type changed {_field_type(f)} -> {_field_type(nf)}")
        for oe in od.enum_types:
            ne = nd.enum_types_by_name.get(oe.name)
            _enum_changes(oe, ne, out)
    new_enums = new.file.enum_types_by_name
    for oe in old.file.enum_types_by_name.values():
        _enum_changes(oe, new_enums.get(oe.name), out)
    return out


def _field_type(f: FieldDescriptor) -> str:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        k = f.message_type.fields_by_name["key"]
        v = f.message_type.fields_by_name["value"]
        return f"map<{_field_type(k)}, {_field_type(v)}>"
    if f.message_type is not None:
        base = f.message_type.full_name
    elif f.enum_type is not None:
        base = f.enum_type.full_name
    else:
        base = _TYPE_NAMES.get(f.type, str(f.type))
    return f"repeated {base}" if f.is_repeated else base


def _enum_changes(oe: EnumDescriptor, ne: EnumDescriptor | None, out: list[str]) -> None:
    if ne is None:
        out.append(f"enum {oe.full_name} removed")
        return
    new_values = {v.name: v.number for v in ne.values}
    for v in oe.values:
        if v.name not in new_values:
            out.append(f"enum value {oe.full_name}.{v.name} removed")
        elif new_values[v.name] != v.number:
            out.append(
                f"enum value {oe.full_name}.{v.name}: number changed {v.number} -> {new_values[v.name]}"
            )
