package org.modelrunner.host;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The message and enum types of one contract, as sent by Python (bridge/schema.py).
 *
 * <p>Text format, one record per line, fields separated by TAB:
 * <pre>
 * M  fullName  mapEntry(0|1)
 * F  name  number  type  repeated(0|1)  presence(0|1)  typeRef(or -)  jsonName(or -)  oneof(or -)   (belongs to the last M)
 * E  fullName  NAME=number,NAME=number,...
 * </pre>
 * {@code type} is the protobuf FieldDescriptor type number (1 double ... 18 sint64).
 */
final class Schema {
    static final int DOUBLE = 1, FLOAT = 2, INT64 = 3, UINT64 = 4, INT32 = 5, FIXED64 = 6, FIXED32 = 7, BOOL = 8,
            STRING = 9, GROUP = 10, MESSAGE = 11, BYTES = 12, UINT32 = 13, ENUM = 14, SFIXED32 = 15, SFIXED64 = 16,
            SINT32 = 17, SINT64 = 18;

    final Map<String, Msg> messages = new LinkedHashMap<>();
    final Map<String, EnumDef> enums = new LinkedHashMap<>();

    static final class Msg {
        final String name;
        final boolean mapEntry;
        final List<Field> fields = new ArrayList<>();
        /** Its fields by JSON key, built on first use (ProtoJson.keys). */
        volatile Map<String, Field> jsonKeys;
        Msg(String name, boolean mapEntry) { this.name = name; this.mapEntry = mapEntry; }

        Field field(int number) {
            for (Field f : fields) if (f.number == number) return f;
            return null;
        }

        String simpleName() { int i = name.lastIndexOf('.'); return i < 0 ? name : name.substring(i + 1); }
    }

    static final class Field {
        final Msg owner;
        final String name;
        final int number, type;
        final boolean repeated, presence;
        final String typeRef;
        /** The field's JSON name (json_name), or null; the binder matches it when the name matches nothing. */
        String jsonName;
        /** The oneof the field is a member of (proto3 optional fields: their synthetic one), or null. */
        String oneof;
        Msg message;
        EnumDef enumDef;

        Field(Msg owner, String name, int number, int type, boolean repeated, boolean presence, String typeRef) {
            this.owner = owner; this.name = name; this.number = number; this.type = type;
            this.repeated = repeated; this.presence = presence; this.typeRef = typeRef;
        }

        boolean isMap() { return repeated && message != null && message.mapEntry; }
        boolean isMessage() { return type == MESSAGE || type == GROUP; }
        boolean isNumeric() {
            return type != STRING && type != BYTES && type != MESSAGE && type != GROUP && type != BOOL && type != ENUM;
        }
        String where() { return owner.name + "." + name; }
    }

    static final class EnumDef {
        final String name;
        final Map<Integer, String> byNumber = new LinkedHashMap<>();
        final Map<String, Integer> byName = new HashMap<>();
        EnumDef(String name) { this.name = name; }
    }

    static Schema parse(String text) {
        Schema s = new Schema();
        Msg current = null;
        List<Field> all = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.isEmpty()) continue;
            String[] p = line.split("\t", -1);
            switch (p[0]) {
                case "M":
                    current = new Msg(p[1], p[2].equals("1"));
                    s.messages.put(current.name, current);
                    break;
                case "F": {
                    Field f = new Field(current, p[1], Integer.parseInt(p[2]), Integer.parseInt(p[3]),
                            p[4].equals("1"), p[5].equals("1"), p[6].equals("-") ? null : p[6]);
                    if (p.length > 7 && !p[7].equals("-")) f.jsonName = p[7];
                    if (p.length > 8 && !p[8].equals("-")) f.oneof = p[8];
                    current.fields.add(f);
                    all.add(f);
                    break;
                }
                case "E": {
                    EnumDef e = new EnumDef(p[1]);
                    if (p.length > 2 && !p[2].isEmpty()) {
                        for (String kv : p[2].split(",")) {
                            int eq = kv.indexOf('=');
                            String n = kv.substring(0, eq);
                            int num = Integer.parseInt(kv.substring(eq + 1));
                            e.byNumber.putIfAbsent(num, n);
                            e.byName.put(n, num);
                        }
                    }
                    s.enums.put(e.name, e);
                    break;
                }
                default:
                    throw new IllegalArgumentException("bad schema line: " + line);
            }
        }
        for (Field f : all) {
            if (f.type == MESSAGE || f.type == GROUP) f.message = s.messages.get(f.typeRef);
            if (f.type == ENUM) f.enumDef = s.enums.get(f.typeRef);
            if ((f.isMessage() && f.message == null) || (f.type == ENUM && f.enumDef == null))
                throw new IllegalArgumentException("schema: unknown type " + f.typeRef + " of " + f.where());
        }
        return s;
    }
}
