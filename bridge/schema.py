"""The compact schema the host library decodes/encodes protobuf with (format: Schema.java)."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, ServiceDescriptor

_SEPARATORS = frozenset("\t\n\r")


def _repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def service_schema(service: ServiceDescriptor) -> str:
    """Schema text of every message and enum reachable from the rpcs of ``service`` (a ServiceDescriptor)."""
    messages: dict[str, Descriptor] = {}
    enums: dict[str, EnumDescriptor] = {}

    def visit(md: Descriptor) -> None:
        if md.full_name in messages:
            return
        messages[md.full_name] = md
        for f in md.fields:
            if f.message_type is not None:
                visit(f.message_type)
            if f.enum_type is not None:
                enums[f.enum_type.full_name] = f.enum_type

    for m in service.methods:
        visit(m.input_type)
        visit(m.output_type)
    lines: list[str] = []
    for md in messages.values():
        lines.append(f"M\t{md.full_name}\t{1 if md.GetOptions().map_entry else 0}")
        for f in md.fields:
            ref = (
                f.message_type.full_name if f.message_type else f.enum_type.full_name if f.enum_type else "-"
            )
            json_name = f.json_name if f.json_name and not _SEPARATORS & set(f.json_name) else "-"
            oneof = f.containing_oneof.name if f.containing_oneof is not None else "-"
            lines.append(
                f"F\t{f.name}\t{f.number}\t{f.type}\t{int(_repeated(f))}\t{int(f.has_presence)}\t{ref}"
                f"\t{json_name}\t{oneof}"
            )
    for ed in enums.values():
        lines.append(f"E\t{ed.full_name}\t" + ",".join(f"{v.name}={v.number}" for v in ed.values))
    return "\n".join(lines) + "\n"
