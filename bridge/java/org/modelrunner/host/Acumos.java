package org.modelrunner.host;

import java.io.File;
import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;

/**
 * Acumos generic-model-runner models: {@code static List<?> m(String)} or {@code m(java.io.File)}, configured by
 * modelConfig.properties. By default this does what the Acumos runner's RunnerController does (doPredictGeneric):
 *
 * <ul>
 * <li>CSV input (getRowString): a header line, then the values of the input message's fields in declaration order,
 * nested messages flattened in place, each message (the input and every nested one) ending its line;
 * <li>JSON input: the input message as protobuf-java's JsonFormat printer prints it with preserved proto field names
 * (pretty printed, fields by number, defaults omitted);
 * <li>output (getPredictionRow): the returned list fills the output message's fields in declaration order, each
 * scalar field by the values of its Java type (a singular field the first such value, a repeated one the first
 * run of them), nested messages recursively; with {@code modelOutputType=JSON} element 0 is the output message's
 * JSON;
 * <li>a method taking {@code java.io.File} gets a temporary file holding the CSV/JSON text.
 * </ul>
 *
 * <p>{@code modelInputLayout=rows} and {@code modelOutputFill=first} keep the layout this bridge used before (rows of
 * the only repeated message field, one line each; the list filling one target field).
 */
final class Acumos {
    static final String CONFIG = "modelConfig.properties";

    boolean jsonIn, jsonOut, header, rowsLayout, fillFirst, fileArg;
    Schema.Msg inMsg, outMsg;
    Codecs.MsgCodec in, outCodec;
    final Map<Schema.Msg, List<Schema.Field>> fieldsByNumber = new java.util.concurrent.ConcurrentHashMap<>();
    // modelInputLayout=rows / modelOutputFill=first
    String rowsField;
    Schema.Field target;
    Codecs.FieldCodec out;

    /** Methods Acumos can call: one parameter, a File (preferred, as Acumos does) or a String. */
    static Method pick(List<Method> methods) {
        for (Method m : methods) if (m.getParameterCount() == 1 && m.getParameterTypes()[0] == File.class) return m;
        for (Method m : methods) if (takesString(m)) return m;
        return null;
    }

    static boolean callable(Method m) {
        return m.getParameterCount() == 1 && (m.getParameterTypes()[0] == File.class || takesString(m));
    }

    private static boolean takesString(Method m) {
        return m.getParameterCount() == 1 && m.getParameterTypes()[0].isAssignableFrom(String.class)
                && m.getParameterTypes()[0] != Object.class;
    }

    /** Reads the settings and builds the codecs; returns what is wrong, or null. */
    String configure(Properties p, Method m, Binder bd, Schema.Msg inM, Schema.Msg outM) {
        inMsg = inM;
        outMsg = outM;
        fileArg = m.getParameterTypes()[0] == File.class;
        String inType = setting(p, "modelInputType", "CSV");
        if (!inType.equalsIgnoreCase("csv") && !inType.equalsIgnoreCase("json"))
            return bad("modelInputType", inType, "CSV or JSON");
        jsonIn = inType.equalsIgnoreCase("json");
        // Acumos parses the answer as JSON for JSON and fills by Java types otherwise
        jsonOut = setting(p, "modelOutputType", "CSV").equalsIgnoreCase("json");
        String layout = setting(p, "modelInputLayout", "acumos");
        if (!layout.equals("acumos") && !layout.equals("rows")) return bad("modelInputLayout", layout, "acumos or rows");
        rowsLayout = layout.equals("rows");
        String h = setting(p, "modelInputHeader", rowsLayout ? "false" : "true");
        if (!h.equalsIgnoreCase("true") && !h.equalsIgnoreCase("false")) return bad("modelInputHeader", h, "true or false");
        header = h.equalsIgnoreCase("true");
        String fill = setting(p, "modelOutputFill", "runs");
        if (!fill.equals("runs") && !fill.equals("first")) return bad("modelOutputFill", fill, "runs or first");
        fillFirst = fill.equals("first");
        if (fillFirst && jsonOut) return "modelOutputFill=first and modelOutputType=JSON (" + CONFIG + ") exclude each other";
        in = bd.message(inM, Object.class, true);
        Schema.Field only = inM.fields.size() == 1 ? inM.fields.get(0) : null;
        rowsField = only != null && only.repeated && only.isMessage() && !only.isMap() ? only.name : null;
        if (fillFirst) {
            target = targetField(outM);
            if (target != null) out = bd.field(target, target.isMap() ? Map.class : target.repeated ? List.class : Object.class, false);
        } else outCodec = bd.message(outM, Object.class, false);
        return null;
    }

    private static String setting(Properties p, String key, String dflt) {
        String v = p.getProperty(key);
        return v == null || v.trim().isEmpty() ? dflt : v.trim();
    }

    private static String bad(String key, String value, String allowed) {
        return key + "=" + value + " (" + CONFIG + ") is not supported: use " + allowed;
    }

    static Schema.Field targetField(Schema.Msg out) {
        if (out.fields.isEmpty()) return null;
        Schema.Field rep = null;
        int n = 0;
        for (Schema.Field f : out.fields) if (f.repeated && !f.isMap()) { rep = f; n++; }
        return n == 1 ? rep : out.fields.get(0);
    }

    // ------------------------------------------------------------------ the call

    @SuppressWarnings("unchecked")
    byte[] call(MethodHandle invoker, byte[] req) throws Throwable {
        Map<String, Object> msg = (Map<String, Object>) in.read(new Wire.In(req), req.length);
        String text;
        if (rowsLayout) {
            List<Object> rows = rowsField != null ? (List<Object>) msg.get(rowsField) : Collections.singletonList(msg);
            text = jsonIn ? Json.write(rows) : rowsCsv(rows);
        } else text = jsonIn ? JsonPrinter.print(inMsg, msg, fieldsByNumber) : acumosCsv(msg);
        Object r = fileArg ? callWithFile(invoker, text) : (Object) invoker.invokeExact(new Object[] {text});
        if (r == null) return Slot.EMPTY;
        List<Object> list = new ArrayList<>();
        if (r instanceof Collection) list.addAll((Collection<?>) r);
        else if (r.getClass().isArray() && !(r instanceof byte[])) for (Object o : Codecs.elements(r)) list.add(o);
        else list.add(r);
        Wire.Out o = new Wire.Out(64);
        try {
            if (fillFirst) {
                if (out == null) return Slot.EMPTY;
                if (target.repeated) out.write(list, o);
                else if (!list.isEmpty()) out.write(list.get(0), o);
            } else outCodec.write(jsonOut ? fromJson(list) : fillByRuns(list), o);
        } catch (RuntimeException e) {
            throw new Slot.Binding.OutputError(e);
        }
        return o.toByteArray();
    }

    /** As Acumos: the text in a file named {@code <uuid>_genfile.csv|.json}, removed after the call. */
    private Object callWithFile(MethodHandle invoker, String text) throws Throwable {
        Path dir;
        try {
            dir = Files.createTempDirectory("modelrunner-acumos-"); // owner-only on POSIX
        } catch (IOException e) {
            throw new HostException("io", "cannot create a temporary folder for the input file of an Acumos model: " + e, e, null);
        }
        try {
            Path f = dir.resolve(UUID.randomUUID() + "_genfile." + (jsonIn ? "json" : "csv"));
            try {
                Files.write(f, text.getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new HostException("io", "cannot write the input file " + f + " of an Acumos model: " + e, e, null);
            }
            return (Object) invoker.invokeExact(new Object[] {f.toFile()});
        } finally {
            deleteTree(dir.toFile());
        }
    }

    /** Removes what the call left in its folder; a symbolic link the model made is removed, never followed. */
    private static void deleteTree(File f) {
        File[] children = f.isDirectory() && !Files.isSymbolicLink(f.toPath()) ? f.listFiles() : null;
        if (children != null) for (File c : children) deleteTree(c);
        if (!f.delete()) f.deleteOnExit();
    }

    // ------------------------------------------------------------------ CSV input (RunnerController.getRowString)

    private String acumosCsv(Map<String, Object> msg) {
        StringBuilder row = new StringBuilder(), hdr = new StringBuilder();
        rowString(inMsg, msg, row, hdr, new HashSet<>());
        return header ? hdr.append(row).toString() : row.toString();
    }

    /**
     * One message: its values joined by ',' (a comma only after a value on the same line), the field names added to
     * the header until the first message ends (repeated values repeat their name, enum fields add none), then '\n'.
     * An absent message gives its default values (as protobuf getters do); a type already being expanded as absent
     * gives nothing (Acumos would recurse forever).
     */
    @SuppressWarnings("unchecked")
    private static void rowString(Schema.Msg m, Map<?, ?> v, StringBuilder row, StringBuilder hdr, Set<String> absentPath) {
        for (Schema.Field f : m.fields) {
            Object x = v == null ? null : v.get(f.name);
            if (f.isMap()) {
                if (x != null) for (Map.Entry<?, ?> e : ((Map<?, ?>) x).entrySet()) {
                    Map<String, Object> entry = new LinkedHashMap<>();
                    entry.put("key", e.getKey());
                    entry.put("value", e.getValue());
                    cell(f, entry, row, hdr, absentPath);
                }
            } else if (f.repeated) {
                if (x != null) for (Object e : (List<Object>) x) cell(f, e, row, hdr, absentPath);
            } else cell(f, x, row, hdr, absentPath);
        }
        appendHeader(hdr, null);
        row.append('\n');
    }

    private static void cell(Schema.Field f, Object x, StringBuilder row, StringBuilder hdr, Set<String> absentPath) {
        if (f.isMessage()) {
            // Acumos appends the comma, then takes it back for a message
            if (x != null) rowString(f.message, (Map<?, ?>) x, row, hdr, absentPath);
            else if (absentPath.add(f.message.name)) {
                rowString(f.message, null, row, hdr, absentPath);
                absentPath.remove(f.message.name);
            }
            return;
        }
        if (row.length() != 0 && row.charAt(row.length() - 1) != '\n') row.append(',');
        if (f.type == Schema.ENUM) { row.append(enumNumber(f, x)); return; }
        row.append(csvScalar(f, x));
        appendHeader(hdr, f.name);
    }

    /** null: the end of a message (ends the header line if it is not ended yet). */
    private static void appendHeader(StringBuilder hdr, String name) {
        if (hdr.length() != 0 && hdr.charAt(hdr.length() - 1) == '\n') return;
        if (name == null) { hdr.append('\n'); return; }
        if (hdr.length() != 0) hdr.append(',');
        hdr.append(name);
    }

    /** Java's toString of the value protobuf-java's getter returns (uint32/uint64 as signed, as Acumos prints them). */
    private static String csvScalar(Schema.Field f, Object x) {
        switch (f.type) {
            case Schema.DOUBLE: return Double.toString(x == null ? 0.0 : ((Number) x).doubleValue());
            case Schema.FLOAT: return Float.toString(x == null ? 0f : ((Number) x).floatValue());
            case Schema.BOOL: return Boolean.toString(x != null && (Boolean) x);
            case Schema.STRING: return x == null ? "" : (String) x;
            // Acumos appends the byte[] object itself ("[B@<hash>"): its content is lost; base64 keeps it
            case Schema.BYTES: return x == null ? "" : Base64.getEncoder().encodeToString((byte[]) x);
            case Schema.INT64: case Schema.UINT64: case Schema.SINT64: case Schema.FIXED64: case Schema.SFIXED64:
                return Long.toString(x == null ? 0L : ((Number) x).longValue());
            default: return Integer.toString(x == null ? 0 : ((Number) x).intValue());
        }
    }

    /** The generic codec reads an enum as its name (or the number's text when it has none). */
    static int enumNumber(Schema.Field f, Object x) {
        if (x == null) return 0;
        if (x instanceof Number) return ((Number) x).intValue();
        Integer n = f.enumDef.byName.get(x.toString());
        return n != null ? n : Integer.parseInt(x.toString());
    }

    // ------------------------------------------------------------------ output by runs (RunnerController.getPredictionRow)

    private Map<String, Object> fillByRuns(List<Object> returned) {
        List<Object> list = new ArrayList<>(returned); // Acumos consumes the model's own list
        Map<String, Object> msg = fill(outMsg, list, new HashSet<>());
        if (!list.isEmpty()) throw new IllegalArgumentException(leftover(returned, list, msg));
        return msg == null ? Collections.emptyMap() : msg;
    }

    /**
     * Fills message {@code m} from the front of {@code list}, removing what it takes; null when nothing fits. A
     * message type already being filled on the path is not entered again (Acumos would recurse forever).
     */
    private static Map<String, Object> fill(Schema.Msg m, List<Object> list, Set<String> path) {
        Map<String, Object> out = new LinkedHashMap<>();
        path.add(m.name);
        for (Schema.Field f : m.fields) {
            if (f.isMap()) continue; // Acumos fills no map field
            if (f.isMessage()) {
                if (path.contains(f.message.name)) continue;
                if (f.repeated) {
                    List<Object> rows = new ArrayList<>();
                    while (!list.isEmpty()) {
                        Map<String, Object> row = fill(f.message, list, path);
                        if (row == null) break;
                        rows.add(row);
                    }
                    if (!rows.isEmpty()) out.put(f.name, rows);
                } else {
                    Map<String, Object> sub = fill(f.message, list, path);
                    if (sub != null) out.put(f.name, sub);
                }
            } else if (f.repeated) {
                // the first run of values of the field's Java type; enum numbers with no constant are skipped
                List<Object> run = new ArrayList<>();
                boolean started = false;
                for (Object o : list) {
                    if (javaTypeOf(f).isInstance(o)) {
                        started = true;
                        if (f.type != Schema.ENUM || f.enumDef.byNumber.containsKey((Integer) o)) run.add(o);
                    } else if (started) break;
                }
                if (!run.isEmpty()) {
                    out.put(f.name, run);
                    list.removeAll(run); // as Acumos: every equal value leaves the list, not just the run
                }
            } else {
                for (Iterator<Object> it = list.iterator(); it.hasNext();) {
                    Object o = it.next();
                    if (javaTypeOf(f).isInstance(o) && (f.type != Schema.ENUM || f.enumDef.byNumber.containsKey((Integer) o))) {
                        out.put(f.name, o);
                        it.remove();
                        break;
                    }
                }
            }
        }
        path.remove(m.name);
        return out.isEmpty() ? null : out;
    }

    /** The Java type Acumos fills a scalar field from (enums: their numbers). */
    static Class<?> javaTypeOf(Schema.Field f) {
        switch (f.type) {
            case Schema.DOUBLE: return Double.class;
            case Schema.FLOAT: return Float.class;
            case Schema.BOOL: return Boolean.class;
            case Schema.STRING: return String.class;
            case Schema.BYTES: return byte[].class;
            case Schema.INT64: case Schema.UINT64: case Schema.SINT64: case Schema.FIXED64: case Schema.SFIXED64: return Long.class;
            default: return Integer.class; // 32-bit integers and enums
        }
    }

    private static String typeName(Object o) {
        return o == null ? "null" : o instanceof byte[] ? "byte[]" : o.getClass().getName();
    }

    /** Names the first value that filled nothing, its Java type, and the fields that stayed empty with theirs. */
    private String leftover(List<Object> returned, List<Object> left, Map<String, Object> filled) {
        Object first = left.get(0);
        int pos = 0;
        for (int i = 0; i < returned.size(); i++) if (returned.get(i) == first) { pos = i; break; }
        String shown = first instanceof String ? "\"" + first + "\"" : first instanceof byte[] ? "(" + ((byte[]) first).length + " bytes)" : String.valueOf(first);
        StringBuilder sb = new StringBuilder();
        sb.append("the list returned does not fit message ").append(outMsg.name).append(": value ").append(pos)
                .append(' ').append(shown).append(" (").append(typeName(first)).append(") fills no field");
        if (left.size() > 1) sb.append(" (").append(left.size()).append(" values left over)");
        List<String> empty = new ArrayList<>();
        collectEmpty(outMsg, filled, "", empty);
        if (empty.isEmpty()) sb.append("; every field is filled (too many values)");
        else sb.append("; fields left empty: ").append(String.join(", ", empty));
        sb.append(" (Acumos fills each field from values of its Java type, in field order)");
        return sb.toString();
    }

    @SuppressWarnings("unchecked")
    private static void collectEmpty(Schema.Msg m, Map<String, Object> filled, String prefix, List<String> out) {
        for (Schema.Field f : m.fields) {
            if (f.isMap()) continue;
            Object v = filled == null ? null : filled.get(f.name);
            String name = prefix + f.name;
            if (f.isMessage()) {
                if (v == null) out.add(name + " (message " + f.message.name + ")");
                else if (!f.repeated) collectEmpty(f.message, (Map<String, Object>) v, name + ".", out);
            } else if (v == null) {
                String kind = f.type == Schema.ENUM ? "enum " + f.enumDef.name + ", takes java.lang.Integer numbers"
                        : typeLabel(f) + ", takes " + (f.type == Schema.BYTES ? "byte[]" : javaTypeOf(f).getName());
                out.add(name + " (" + (f.repeated ? "repeated " : "") + kind + ")");
            }
        }
    }

    private static String typeLabel(Schema.Field f) {
        switch (f.type) {
            case Schema.DOUBLE: return "double";
            case Schema.FLOAT: return "float";
            case Schema.INT64: return "int64";
            case Schema.UINT64: return "uint64";
            case Schema.INT32: return "int32";
            case Schema.FIXED64: return "fixed64";
            case Schema.FIXED32: return "fixed32";
            case Schema.BOOL: return "bool";
            case Schema.STRING: return "string";
            case Schema.BYTES: return "bytes";
            case Schema.UINT32: return "uint32";
            case Schema.SFIXED32: return "sfixed32";
            case Schema.SFIXED64: return "sfixed64";
            case Schema.SINT32: return "sint32";
            case Schema.SINT64: return "sint64";
            default: return "type " + f.type;
        }
    }

    // ------------------------------------------------------------------ JSON output (modelOutputType=JSON)

    private Map<String, Object> fromJson(List<Object> list) {
        if (list.isEmpty())
            throw new IllegalArgumentException("modelOutputType=JSON: the list returned is empty; its element 0 must be the JSON of message " + outMsg.name);
        Object first = list.get(0);
        if (!(first instanceof String))
            throw new IllegalArgumentException("modelOutputType=JSON: element 0 of the list returned is " + typeName(first)
                    + ", not a String holding the JSON of message " + outMsg.name);
        return JsonReader.message(outMsg, (String) first);
    }

    // ------------------------------------------------------------------ modelInputLayout=rows

    private String rowsCsv(List<Object> rows) {
        StringBuilder sb = new StringBuilder();
        if (header && !rows.isEmpty()) {
            List<String> names = new ArrayList<>();
            flattenNames("", rows.get(0), names);
            appendLine(sb, names);
        }
        for (Object row : rows) {
            List<String> cells = new ArrayList<>();
            flatten(row, cells);
            appendLine(sb, cells);
        }
        return sb.toString();
    }

    private static void appendLine(StringBuilder sb, List<String> cells) {
        if (sb.length() > 0) sb.append('\n');
        for (int i = 0; i < cells.size(); i++) {
            if (i > 0) sb.append(',');
            String c = cells.get(i);
            if (c.indexOf(',') >= 0 || c.indexOf('"') >= 0 || c.indexOf('\n') >= 0) sb.append('"').append(c.replace("\"", "\"\"")).append('"');
            else sb.append(c);
        }
    }

    private static void flatten(Object v, List<String> out) {
        if (v instanceof Map) for (Object x : ((Map<?, ?>) v).values()) flatten(x, out);
        else if (v instanceof Collection) for (Object x : (Collection<?>) v) flatten(x, out);
        else if (v instanceof byte[]) out.add(Base64.getEncoder().encodeToString((byte[]) v));
        else if (v != null) out.add(String.valueOf(v));
    }

    private static void flattenNames(String prefix, Object v, List<String> out) {
        if (v instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet())
                flattenNames(prefix.isEmpty() ? String.valueOf(e.getKey()) : prefix + "." + e.getKey(), e.getValue(), out);
        } else if (v instanceof Collection) {
            int i = 0;
            for (Object x : (Collection<?>) v) flattenNames(prefix + "." + i++, x, out);
        } else if (v != null) out.add(prefix);
    }

    // ------------------------------------------------------------------ JSON as protobuf-java's JsonFormat

    /** JsonFormat.printer().preservingProtoFieldNames().print(message): pretty printed, fields by number, defaults omitted. */
    static final class JsonPrinter {
        private final StringBuilder sb = new StringBuilder();
        private String indent = "";
        private boolean atLineStart;

        /** The fields of each message by number (kept by the binding: a model's messages live as long as it). */
        private final Map<Schema.Msg, List<Schema.Field>> byNumber;

        private JsonPrinter(Map<Schema.Msg, List<Schema.Field>> byNumber) { this.byNumber = byNumber; }

        private static List<Schema.Field> sorted(Schema.Msg m) {
            List<Schema.Field> l = new ArrayList<>(m.fields);
            l.sort(Comparator.comparingInt(f -> f.number));
            return l;
        }

        static String print(Schema.Msg m, Map<?, ?> v, Map<Schema.Msg, List<Schema.Field>> byNumber) {
            JsonPrinter p = new JsonPrinter(byNumber);
            p.message(m, v);
            return p.sb.toString();
        }

        /** Writes text, indenting every line start (JsonFormat's PrettyTextGenerator). */
        private void out(String text) {
            if (text.indexOf('\n') < 0) { write(text); return; }
            int pos = 0;
            for (int i = 0; i < text.length(); i++) {
                if (text.charAt(i) == '\n') {
                    write(text.substring(pos, i + 1));
                    pos = i + 1;
                    atLineStart = true;
                }
            }
            write(text.substring(pos));
        }

        private void write(String s) {
            if (s.isEmpty()) return;
            if (atLineStart) { atLineStart = false; sb.append(indent); }
            sb.append(s);
        }

        private void message(Schema.Msg m, Map<?, ?> v) {
            out("{\n");
            indent += "  ";
            boolean printed = false;
            for (Schema.Field f : byNumber.computeIfAbsent(m, JsonPrinter::sorted)) {
                Object x = v == null ? null : v.get(f.name);
                if (!present(f, x)) continue;
                if (printed) out(",\n");
                printed = true;
                out("\"" + f.name + "\": ");
                if (f.isMap()) map(f, (Map<?, ?>) x);
                else if (f.repeated) {
                    out("[");
                    boolean first = true;
                    for (Object e : (List<?>) x) {
                        if (!first) out(", ");
                        first = false;
                        single(f, e, false);
                    }
                    out("]");
                } else single(f, x, false);
            }
            if (printed) out("\n");
            indent = indent.substring(2);
            out("}");
        }

        private void map(Schema.Field f, Map<?, ?> x) {
            Schema.Field kf = f.message.fields.get(0), vf = f.message.fields.get(1);
            out("{\n");
            indent += "  ";
            boolean first = true;
            for (Map.Entry<?, ?> e : x.entrySet()) {
                if (!first) out(",\n");
                first = false;
                single(kf, e.getKey(), true);
                out(": ");
                single(vf, e.getValue(), false);
            }
            if (!first) out("\n");
            indent = indent.substring(2);
            out("}");
        }

        private static boolean present(Schema.Field f, Object x) {
            if (x == null) return false;
            if (f.isMap()) return !((Map<?, ?>) x).isEmpty();
            if (f.repeated) return !((List<?>) x).isEmpty();
            if (f.isMessage() || f.presence) return true;
            switch (f.type) {
                case Schema.DOUBLE: case Schema.FLOAT: return Double.doubleToRawLongBits(((Number) x).doubleValue()) != 0;
                case Schema.BOOL: return (Boolean) x;
                case Schema.STRING: return !((String) x).isEmpty();
                case Schema.BYTES: return ((byte[]) x).length != 0;
                case Schema.ENUM: return enumNumber(f, x) != 0;
                default: return ((Number) x).longValue() != 0;
            }
        }

        private void single(Schema.Field f, Object x, boolean quoted) {
            switch (f.type) {
                case Schema.INT32: case Schema.SINT32: case Schema.SFIXED32: {
                    String s = Integer.toString(((Number) x).intValue());
                    out(quoted ? "\"" + s + "\"" : s);
                    break;
                }
                case Schema.UINT32: case Schema.FIXED32: {
                    String s = Integer.toUnsignedString(((Number) x).intValue());
                    out(quoted ? "\"" + s + "\"" : s);
                    break;
                }
                case Schema.INT64: case Schema.SINT64: case Schema.SFIXED64:
                    out("\"" + ((Number) x).longValue() + "\"");
                    break;
                case Schema.UINT64: case Schema.FIXED64:
                    out("\"" + Long.toUnsignedString(((Number) x).longValue()) + "\"");
                    break;
                case Schema.BOOL:
                    out(quoted ? "\"" + x + "\"" : String.valueOf(x));
                    break;
                case Schema.FLOAT: {
                    float d = ((Number) x).floatValue();
                    if (Float.isNaN(d)) out("\"NaN\"");
                    else if (Float.isInfinite(d)) out(d < 0 ? "\"-Infinity\"" : "\"Infinity\"");
                    else out(quoted ? "\"" + d + "\"" : Float.toString(d));
                    break;
                }
                case Schema.DOUBLE: {
                    double d = ((Number) x).doubleValue();
                    if (Double.isNaN(d)) out("\"NaN\"");
                    else if (Double.isInfinite(d)) out(d < 0 ? "\"-Infinity\"" : "\"Infinity\"");
                    else out(quoted ? "\"" + d + "\"" : Double.toString(d));
                    break;
                }
                case Schema.STRING: out(gsonString((String) x)); break;
                case Schema.BYTES: out("\"" + Base64.getEncoder().encodeToString((byte[]) x) + "\""); break;
                case Schema.ENUM: {
                    int n = enumNumber(f, x);
                    String name = f.enumDef.byNumber.get(n);
                    out(name != null ? "\"" + name + "\"" : Integer.toString(n));
                    break;
                }
                default: message(f.message, (Map<?, ?>) x);
            }
        }

        /** A string as Gson (which JsonFormat uses for strings) writes it: HTML-safe escapes included. */
        static String gsonString(String s) {
            StringBuilder b = new StringBuilder(s.length() + 2).append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': b.append("\\\""); break;
                    case '\\': b.append("\\\\"); break;
                    case '\t': b.append("\\t"); break;
                    case '\b': b.append("\\b"); break;
                    case '\n': b.append("\\n"); break;
                    case '\r': b.append("\\r"); break;
                    case '\f': b.append("\\f"); break;
                    case '<': case '>': case '&': case '=': case '\'': case '\u2028': case '\u2029':
                        b.append(String.format("\\u%04x", (int) c));
                        break;
                    default:
                        if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
                }
            }
            return b.append('"').toString();
        }
    }

    /** JSON text -> the generic map of a message, as JsonFormat.parser().merge reads it (strict: unknown fields fail). */
    static final class JsonReader {
        private static final Object NULL = new Object();

        /** A JSON number, kept as its text (JsonFormat reads it for the field's type). */
        static final class Num {
            final String text;
            Num(String text) { this.text = text; }
            @Override public String toString() { return text; }
        }

        private final String s;
        private int i;

        private JsonReader(String s) { this.s = s; }

        static Map<String, Object> message(Schema.Msg m, String json) {
            JsonReader r = new JsonReader(json);
            r.space();
            Object v = r.value();
            r.space();
            if (r.i != json.length()) throw r.error("unexpected text after the JSON value");
            if (!(v instanceof Map)) throw new IllegalArgumentException("modelOutputType=JSON: element 0 of the list returned is not a JSON object (message " + m.name + ")");
            return merge(m, (Map<?, ?>) v, m.name);
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("modelOutputType=JSON: element 0 of the list returned is not valid JSON: " + what + " at offset " + i);
        }

        private void space() { while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++; }

        private Object value() {
            if (i >= s.length()) throw error("unexpected end");
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                space();
                if (peek('}')) return m;
                while (true) {
                    space();
                    if (i >= s.length() || s.charAt(i) != '"') throw error("expected a member name");
                    String k = string();
                    space();
                    expect(':');
                    space();
                    m.put(k, value());
                    space();
                    if (peek('}')) return m;
                    expect(',');
                }
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                space();
                if (peek(']')) return l;
                while (true) {
                    space();
                    l.add(value());
                    space();
                    if (peek(']')) return l;
                    expect(',');
                }
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return NULL; }
            int start = i;
            if (c == '-') i++;
            while (i < s.length() && "0123456789.eE+-".indexOf(s.charAt(i)) >= 0) i++;
            String t = s.substring(start, i);
            if (!t.matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) { i = start; throw error("unexpected character '" + c + "'"); }
            return new Num(t);
        }

        private boolean peek(char c) {
            if (i < s.length() && s.charAt(i) == c) { i++; return true; }
            return false;
        }

        private void expect(char c) { if (!peek(c)) throw error("expected '" + c + "'"); }

        private String string() {
            i++;
            StringBuilder b = new StringBuilder();
            while (true) {
                if (i >= s.length()) throw error("unterminated string");
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c < 0x20) throw error("control character in a string");
                if (c != '\\') { b.append(c); continue; }
                if (i >= s.length()) throw error("unterminated string");
                char e = s.charAt(i++);
                switch (e) {
                    case '"': case '\\': case '/': b.append(e); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'u':
                        if (i + 4 > s.length()) throw error("bad \\u escape");
                        try { b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); } catch (NumberFormatException x) { throw error("bad \\u escape"); }
                        i += 4;
                        break;
                    default: throw error("bad escape \\" + e);
                }
            }
        }

        /** protobuf's default json_name: lowerCamel with '_' dropped and the next letter upper-cased. */
        static String jsonName(Schema.Field f) {
            if (f.jsonName != null) return f.jsonName;
            StringBuilder b = new StringBuilder();
            boolean up = false;
            for (char c : f.name.toCharArray()) {
                if (c == '_') up = true;
                else if (up) { b.append(Character.toUpperCase(c)); up = false; }
                else b.append(c);
            }
            return b.toString();
        }

        private static Map<String, Object> merge(Schema.Msg m, Map<?, ?> json, String where) {
            Map<String, Object> out = new LinkedHashMap<>();
            Set<String> seen = new HashSet<>();
            for (Map.Entry<?, ?> e : json.entrySet()) {
                String key = (String) e.getKey();
                Schema.Field f = null;
                for (Schema.Field x : m.fields) if (x.name.equals(key) || jsonName(x).equals(key)) { f = x; break; }
                if (f == null) throw new IllegalArgumentException("modelOutputType=JSON: message " + m.name + " has no field \"" + key + "\" (at " + where + ")");
                if (!seen.add(f.name)) throw new IllegalArgumentException("modelOutputType=JSON: field " + f.where() + " is set twice (its proto and JSON names)");
                Object v = e.getValue();
                if (v == NULL) continue;
                String at = where + "." + f.name;
                if (f.isMap()) {
                    if (!(v instanceof Map)) throw new IllegalArgumentException("modelOutputType=JSON: " + at + " must be a JSON object (a map)");
                    Map<Object, Object> mv = new LinkedHashMap<>();
                    Schema.Field kf = f.message.fields.get(0), vf = f.message.fields.get(1);
                    for (Map.Entry<?, ?> me : ((Map<?, ?>) v).entrySet()) {
                        if (me.getValue() == NULL) throw new IllegalArgumentException("modelOutputType=JSON: map value of " + at + " is null");
                        mv.put(scalar(kf, me.getKey(), at), single(vf, me.getValue(), at));
                    }
                    out.put(f.name, mv);
                } else if (f.repeated) {
                    if (!(v instanceof List)) throw new IllegalArgumentException("modelOutputType=JSON: " + at + " must be a JSON array (a repeated field)");
                    List<Object> l = new ArrayList<>();
                    for (Object x : (List<?>) v) {
                        if (x == NULL) throw new IllegalArgumentException("modelOutputType=JSON: an element of " + at + " is null");
                        l.add(single(f, x, at));
                    }
                    out.put(f.name, l);
                } else out.put(f.name, single(f, v, at));
            }
            return out;
        }

        private static Object single(Schema.Field f, Object v, String at) {
            if (!f.isMessage()) return scalar(f, v, at);
            if (!(v instanceof Map)) throw new IllegalArgumentException("modelOutputType=JSON: " + at + " must be a JSON object (message " + f.message.name + ")");
            return merge(f.message, (Map<?, ?>) v, at);
        }

        private static Object scalar(Schema.Field f, Object v, String at) {
            if (v instanceof Map || v instanceof List)
                throw new IllegalArgumentException("modelOutputType=JSON: " + at + " must be a " + typeLabelOf(f) + " value, not a JSON " + (v instanceof Map ? "object" : "array"));
            String t = String.valueOf(v);
            try {
                switch (f.type) {
                    case Schema.INT32: case Schema.SINT32: case Schema.SFIXED32:
                        return new java.math.BigDecimal(t).intValueExact();
                    case Schema.UINT32: case Schema.FIXED32: {
                        long n = new java.math.BigDecimal(t).longValueExact();
                        if (n < 0 || n > 0xFFFFFFFFL) throw new ArithmeticException();
                        return (int) n;
                    }
                    case Schema.INT64: case Schema.SINT64: case Schema.SFIXED64:
                        return new java.math.BigDecimal(t).longValueExact();
                    case Schema.UINT64: case Schema.FIXED64: {
                        java.math.BigInteger n = new java.math.BigDecimal(t).toBigIntegerExact();
                        if (n.signum() < 0 || n.bitLength() > 64) throw new ArithmeticException();
                        return n.longValue();
                    }
                    case Schema.FLOAT: case Schema.DOUBLE: {
                        double d;
                        if (t.equals("NaN")) d = Double.NaN;
                        else if (t.equals("Infinity")) d = Double.POSITIVE_INFINITY;
                        else if (t.equals("-Infinity")) d = Double.NEGATIVE_INFINITY;
                        else {
                            d = new java.math.BigDecimal(t).doubleValue();
                            double max = (f.type == Schema.FLOAT ? Float.MAX_VALUE : Double.MAX_VALUE) * (1.0 + 1e-6);
                            if (d > max || d < -max) throw new ArithmeticException();
                        }
                        return f.type == Schema.FLOAT ? (Object) (float) d : (Object) d;
                    }
                    case Schema.BOOL:
                        if (t.equals("true")) return Boolean.TRUE;
                        if (t.equals("false")) return Boolean.FALSE;
                        throw new ArithmeticException();
                    case Schema.STRING:
                        return t;
                    case Schema.BYTES:
                        try { return Base64.getDecoder().decode(t); } catch (IllegalArgumentException x) { return Base64.getUrlDecoder().decode(t); }
                    case Schema.ENUM: {
                        Integer n = f.enumDef.byName.get(t);
                        if (n == null && !(v instanceof Boolean)) n = Integer.parseInt(t);
                        if (n == null) throw new ArithmeticException();
                        return n;
                    }
                    default: throw new ArithmeticException();
                }
            } catch (ArithmeticException | IllegalArgumentException e) {
                throw new IllegalArgumentException("modelOutputType=JSON: " + at + " cannot be " + (v instanceof String ? "\"" + t + "\"" : t)
                        + " (" + typeLabelOf(f) + ")");
            }
        }

        private static String typeLabelOf(Schema.Field f) {
            return f.type == Schema.ENUM ? "enum " + f.enumDef.name : typeLabel(f);
        }
    }
}
