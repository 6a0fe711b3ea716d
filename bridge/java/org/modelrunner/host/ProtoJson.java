package org.modelrunner.host;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The proto3 JSON mapping of a contract's messages, driven by {@link Schema}: a request's JSON to its wire
 * bytes, and a response's wire bytes to JSON, giving what the Python path gives (runner/contract/codec.py):
 *
 * <ul>
 * <li>Output: {@code .proto} field names in declaration order, fields without presence always printed (0,
 * "", false, [] and {} included), fields with presence only when set; 64-bit integers as strings; NaN and
 * the infinities as "NaN", "Infinity", "-Infinity"; doubles as Python's {@code repr}, floats as protobuf's
 * {@code ToShortestFloat}; bytes in base64; enums by name (a number without a name as the number); the text
 * as Python's {@code json.dumps} writes it ({@code ", "} and {@code ": "} separators, non-ASCII kept). Inside
 * a map's message values the fields come as json_format lists them (set ones by number, then the rest).
 * Map entries come in the order the model wrote them (Python's come in its hash order).</li>
 * <li>Input: lowerCamelCase JSON names and {@code .proto} names; numbers, numeric strings, "NaN",
 * "Infinity", "-Infinity"; 64-bit integers as numbers or strings; enums by name or number; null leaves a
 * field unset. Refused, with the field's path: unknown fields, JSON nested deeper than the limit, true or
 * false for a float, double or enum field, two members of one oneof, values of the wrong kind or range.</li>
 * </ul>
 *
 * Messages of {@code google.protobuf} (well-known types with JSON forms of their own) and groups are not
 * handled here: {@link #supports} says so, and the caller keeps the Python path for them.
 */
public final class ProtoJson {
    private final Schema schema;

    private ProtoJson(Schema schema) { this.schema = schema; }

    /** The mapping of the messages in {@code schemaText} (bridge/schema.py's format). */
    public static ProtoJson of(String schemaText) throws HostException {
        try {
            return new ProtoJson(Schema.parse(schemaText));
        } catch (RuntimeException e) {
            throw new HostException("load", "bad contract schema: " + e.getMessage());
        }
    }

    /** Whether message {@code name} and every message it holds can take this mapping. */
    public boolean supports(String name) {
        Schema.Msg m = schema.messages.get(name);
        return m != null && supports(m);
    }

    /** A JSON request for message {@code name} as its wire bytes; kind "input" names what is wrong and where. */
    public byte[] toWire(String name, byte[] json, int maxDepth) throws HostException {
        return toWire(message(name), json, maxDepth);
    }

    /** Wire bytes of message {@code name} as JSON; kind "model" when they are not such a message. */
    public byte[] toJson(String name, byte[] wire) throws HostException {
        return toJson(message(name), wire);
    }

    private Schema.Msg message(String name) throws HostException {
        Schema.Msg m = schema.messages.get(name);
        if (m == null) throw new HostException("input", "no message " + name + " in the schema");
        return m;
    }

    static boolean supports(Schema.Msg m) { return supports(m, new IdentityHashMap<>()); }

    private static boolean supports(Schema.Msg m, IdentityHashMap<Schema.Msg, Boolean> seen) {
        if (seen.put(m, Boolean.TRUE) != null) return true;
        if (m.name.startsWith("google.protobuf.")) return false;
        for (Schema.Field f : m.fields) {
            if (f.type == Schema.GROUP) return false;
            if (f.message != null && !supports(f.message, seen)) return false;
        }
        return true;
    }

    static byte[] toWire(Schema.Msg m, byte[] json, int maxDepth) throws HostException {
        try {
            Object tree = new Reader(new String(json, StandardCharsets.UTF_8), maxDepth).document();
            if (!(tree instanceof Map)) {
                throw new BadJson("expected a JSON object for " + m.name + ", got " + kind(tree), "");
            }
            Wire.Out out = new Wire.Out(json.length + 16);
            new Encoder().message(m, asObject(tree), out, m.simpleName());
            return out.toByteArray();
        } catch (BadJson e) {
            StringBuilder detail = new StringBuilder("{\"message\":");
            Json.quote(detail, m.name);
            if (!e.path.isEmpty()) {
                detail.append(",\"path\":");
                Json.quote(detail, e.path);
            }
            detail.append(e.more).append('}');
            throw new HostException("input", e.getMessage(), null, detail.toString());
        }
    }

    static byte[] toJson(Schema.Msg m, byte[] wire) throws HostException {
        try {
            StringBuilder sb = new StringBuilder(64 + wire.length * 2);
            Printer.message(sb, m, new Wire.In(wire), wire.length, false);
            return sb.toString().getBytes(StandardCharsets.UTF_8);
        } catch (Wire.WireException e) {
            throw new HostException("model", "the model's answer is not a " + m.name + ": " + e.getMessage(), e, null);
        }
    }

    // ------------------------------------------------------------------------------------------ JSON text

    /** A refused request: what is wrong and where (a field path, or "" for the document). */
    static final class BadJson extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final String path;
        /** More of the error's detail: JSON members, each after a comma, or "". */
        String more = "";
        BadJson(String message, String path) { super(message, null, false, false); this.path = path; }
    }

    /** A JSON number as written: its text, and whether it has a fraction or an exponent (Python: a float). */
    static final class Num {
        final String text;
        final boolean fractional;
        Num(String text, boolean fractional) { this.text = text; this.fractional = fractional; }
        @Override public String toString() { return text; }
    }

    static final Object NULL = new Object() { @Override public String toString() { return "null"; } };

    /**
     * JSON text to maps, lists, strings, {@link Num}, booleans and {@link #NULL}, as Python's json.loads reads
     * it (a repeated key: the last value, in the first key's place); nesting deeper than {@code maxDepth}
     * brackets is refused before it is read.
     */
    static final class Reader {
        final String s;
        final int maxDepth;
        int pos, depth;

        Reader(String s, int maxDepth) { this.s = s; this.maxDepth = maxDepth; }

        Object document() {
            space();
            Object v = value();
            space();
            if (pos < s.length()) throw syntax("extra data");
            return v;
        }

        private BadJson syntax(String what) {
            int line = 1, col = 1;
            for (int i = 0; i < pos && i < s.length(); i++) {
                if (s.charAt(i) == '\n') { line++; col = 1; } else col++;
            }
            return new BadJson("body is not valid JSON: " + what + " at line " + line + " column " + col, "");
        }

        private void space() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++; else break;
            }
        }

        private Object value() {
            if (pos >= s.length()) throw syntax("expecting value");
            char c = s.charAt(pos);
            switch (c) {
                case '{': return object();
                case '[': return array();
                case '"': return string();
                case 't': return literal("true", Boolean.TRUE);
                case 'f': return literal("false", Boolean.FALSE);
                case 'n': return literal("null", NULL);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return number();
                    throw syntax("expecting value");
            }
        }

        private Object literal(String word, Object v) {
            if (!s.startsWith(word, pos)) throw syntax("expecting value");
            pos += word.length();
            return v;
        }

        private void enter() {
            if (++depth > maxDepth) {
                BadJson e = new BadJson("JSON nested deeper than " + maxDepth + " levels", "");
                e.more = ",\"max_json_depth\":" + maxDepth;
                throw e;
            }
        }

        private Map<String, Object> object() {
            enter();
            pos++;
            Map<String, Object> m = new LinkedHashMap<>();
            space();
            if (pos < s.length() && s.charAt(pos) == '}') { pos++; depth--; return m; }
            while (true) {
                space();
                if (pos >= s.length() || s.charAt(pos) != '"') throw syntax("expecting property name enclosed in double quotes");
                String key = string();
                space();
                if (pos >= s.length() || s.charAt(pos) != ':') throw syntax("expecting ':' delimiter");
                pos++;
                space();
                m.put(key, value());
                space();
                if (pos >= s.length()) throw syntax("expecting ',' delimiter");
                char c = s.charAt(pos++);
                if (c == '}') break;
                if (c != ',') { pos--; throw syntax("expecting ',' delimiter"); }
            }
            depth--;
            return m;
        }

        private List<Object> array() {
            enter();
            pos++;
            List<Object> l = new ArrayList<>();
            space();
            if (pos < s.length() && s.charAt(pos) == ']') { pos++; depth--; return l; }
            while (true) {
                space();
                l.add(value());
                space();
                if (pos >= s.length()) throw syntax("expecting ',' delimiter");
                char c = s.charAt(pos++);
                if (c == ']') break;
                if (c != ',') { pos--; throw syntax("expecting ',' delimiter"); }
            }
            depth--;
            return l;
        }

        private String string() {
            int start = ++pos;
            while (pos < s.length()) { // the common case: no escapes
                char c = s.charAt(pos);
                if (c == '"') return s.substring(start, pos++);
                if (c == '\\' || c < 0x20) break;
                pos++;
            }
            StringBuilder sb = new StringBuilder(s.substring(start, pos));
            while (true) {
                if (pos >= s.length()) throw syntax("unterminated string");
                char c = s.charAt(pos++);
                if (c == '"') return sb.toString();
                if (c < 0x20) { pos--; throw syntax("invalid control character"); }
                if (c != '\\') { sb.append(c); continue; }
                if (pos >= s.length()) throw syntax("unterminated string");
                char e = s.charAt(pos++);
                switch (e) {
                    case '"': sb.append('"'); break;
                    case '\\': sb.append('\\'); break;
                    case '/': sb.append('/'); break;
                    case 'b': sb.append('\b'); break;
                    case 'f': sb.append('\f'); break;
                    case 'n': sb.append('\n'); break;
                    case 'r': sb.append('\r'); break;
                    case 't': sb.append('\t'); break;
                    case 'u': {
                        if (pos + 4 > s.length()) throw syntax("invalid \\uXXXX escape");
                        int cp = 0;
                        for (int i = 0; i < 4; i++) {
                            int d = Character.digit(s.charAt(pos + i), 16);
                            if (d < 0) throw syntax("invalid \\uXXXX escape");
                            cp = cp * 16 + d;
                        }
                        pos += 4;
                        sb.append((char) cp);
                        break;
                    }
                    default: pos--; throw syntax("invalid \\escape");
                }
            }
        }

        private Num number() {
            int start = pos;
            boolean fractional = false;
            if (s.charAt(pos) == '-') pos++;
            if (pos >= s.length()) throw syntax("expecting value");
            if (s.charAt(pos) == '0') pos++;
            else if (digit()) { while (digit()) pos++; }
            else throw syntax("expecting value");
            if (pos < s.length() && s.charAt(pos) == '.' && pos + 1 < s.length() && isDigit(s.charAt(pos + 1))) {
                fractional = true;
                pos++;
                while (digit()) pos++;
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                int mark = pos++;
                if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) pos++;
                if (digit()) { fractional = true; while (digit()) pos++; }
                else pos = mark; // not an exponent: "extra data" follows
            }
            return new Num(s.substring(start, pos), fractional);
        }

        private boolean digit() { return pos < s.length() && isDigit(s.charAt(pos)); }
    }

    static boolean isDigit(char c) { return c >= '0' && c <= '9'; }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asObject(Object v) { return (Map<String, Object>) v; }

    static String kind(Object v) {
        if (v instanceof Map) return "dict";
        if (v instanceof List) return "list";
        if (v instanceof String) return "str";
        if (v instanceof Boolean) return "bool";
        if (v instanceof Num) return ((Num) v).fractional ? "float" : "int";
        return "NoneType";
    }

    // ------------------------------------------------------------------------------------------ JSON -> wire

    /** The fields of {@code m} by JSON key: their JSON names first, then their .proto names (as json_format). */
    static Map<String, Schema.Field> keys(Schema.Msg m) {
        Map<String, Schema.Field> k = m.jsonKeys;
        if (k == null) { // built once per message type (a race builds equal maps)
            k = new HashMap<>();
            for (Schema.Field f : m.fields) k.putIfAbsent(f.name, f);
            for (Schema.Field f : m.fields) k.put(f.jsonName != null ? f.jsonName : lowerCamel(f.name), f);
            m.jsonKeys = k;
        }
        return k;
    }

    /** protoc's default JSON name: underscores dropped, the letter after each one upper-cased. */
    static String lowerCamel(String name) {
        StringBuilder sb = new StringBuilder(name.length());
        boolean up = false;
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c == '_') up = true;
            else if (up) { sb.append(Character.toUpperCase(c)); up = false; }
            else sb.append(c);
        }
        return sb.toString();
    }

    static final BigInteger INT32_MIN = BigInteger.valueOf(Integer.MIN_VALUE), INT32_MAX = BigInteger.valueOf(Integer.MAX_VALUE),
            UINT32_MAX = BigInteger.valueOf(0xFFFFFFFFL), INT64_MIN = BigInteger.valueOf(Long.MIN_VALUE),
            INT64_MAX = BigInteger.valueOf(Long.MAX_VALUE), UINT64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);
    /** The largest float (as json_format's _FLOAT_MAX, a double just below the float's rounding edge). */
    static final double FLOAT_MAX = 3.4028234663852886e+38;
    static final Pattern INTEGER = Pattern.compile("[+-]?[0-9]+");
    static final Pattern DECIMAL = Pattern.compile("[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?");

    static final class Encoder {
        void message(Schema.Msg m, Map<String, Object> obj, Wire.Out out, String path) {
            Map<String, Schema.Field> keys = keys(m);
            Map<Schema.Field, Object> values = new LinkedHashMap<>();
            Map<Schema.Field, String> spelled = new HashMap<>(); // paths name a field as the request does
            Map<String, String> oneofs = null;
            for (Map.Entry<String, Object> e : obj.entrySet()) {
                String key = e.getKey();
                Schema.Field f = keys.get(key);
                if (f == null) {
                    throw new BadJson("unknown field '" + key + "' at " + path + " (a " + m.name + " has no such field)",
                            path + "." + key);
                }
                Object v = e.getValue();
                if (f.oneof != null && v != NULL) {
                    if (oneofs == null) oneofs = new HashMap<>();
                    String other = oneofs.put(f.oneof, key);
                    if (other != null && !other.equals(key)) {
                        throw new BadJson("invalid " + m.name + ": fields '" + other + "' and '" + key + "' are both of oneof "
                                + f.oneof + ", at " + path, path + "." + key);
                    }
                }
                spelled.put(f, key);
                if (v == NULL) values.remove(f); // null: the field stays unset
                else { values.remove(f); values.put(f, v); }
            }
            for (Schema.Field f : m.fields) {
                Object v = values.get(f);
                if (v == null) continue;
                String where = path + "." + spelled.get(f);
                if (f.isMap()) map(f, v, out, where);
                else if (f.repeated) repeated(f, v, out, where);
                else single(f, v, out, where);
            }
        }

        private void map(Schema.Field f, Object v, Wire.Out out, String where) {
            if (!(v instanceof Map)) throw new BadJson("invalid " + f.owner.name + ": map field " + f.name + " must be a JSON object, not "
                    + kind(v) + ", at " + where, where);
            Schema.Field kf = f.message.field(1), vf = f.message.field(2);
            for (Map.Entry<String, Object> e : asObject(v).entrySet()) {
                String at = where + "[" + e.getKey() + "]";
                Object value = e.getValue();
                if (value == NULL) throw new BadJson("invalid " + f.owner.name + ": a map value is not null, at " + at, at);
                out.tag(f.number, Wire.LEN);
                int mark = out.beginLength();
                mapKey(kf, e.getKey(), out, at);
                if (vf.isMessage()) {
                    if (!(value instanceof Map)) throw notMessage(vf, value, at);
                    out.tag(2, Wire.LEN);
                    int sub = out.beginLength();
                    message(vf.message, asObject(value), out, at);
                    out.endLength(sub);
                } else {
                    scalar(vf, value, out, at, true);
                }
                out.endLength(mark);
            }
        }

        private void mapKey(Schema.Field kf, String key, Wire.Out out, String at) {
            if (kf.type == Schema.STRING) { scalar(kf, key, out, at, true); return; }
            if (kf.type == Schema.BOOL) {
                if (!key.equals("true") && !key.equals("false")) {
                    throw new BadJson("invalid " + kf.owner.name + ": a bool map key is \"true\" or \"false\", not " + key + ", at " + at, at);
                }
                scalar(kf, Boolean.valueOf(key), out, at, true);
                return;
            }
            scalar(kf, key, out, at, true);
        }

        private void repeated(Schema.Field f, Object v, Wire.Out out, String where) {
            if (!(v instanceof List)) throw new BadJson("invalid " + f.owner.name + ": repeated field " + f.name + " must be a JSON list, not "
                    + kind(v) + ", at " + where, where);
            List<?> items = (List<?>) v;
            if (items.isEmpty()) return;
            boolean packed = !f.isMessage() && f.type != Schema.STRING && f.type != Schema.BYTES;
            int mark = -1;
            if (packed) { out.tag(f.number, Wire.LEN); mark = out.beginLength(); }
            for (int i = 0; i < items.size(); i++) {
                String at = where + "[" + i + "]";
                Object x = items.get(i);
                if (x == NULL) throw new BadJson("invalid " + f.owner.name + ": null is not an element of repeated field " + f.name + ", at " + at, at);
                if (f.isMessage()) {
                    if (!(x instanceof Map)) throw notMessage(f, x, at);
                    out.tag(f.number, Wire.LEN);
                    int sub = out.beginLength();
                    message(f.message, asObject(x), out, at);
                    out.endLength(sub);
                } else if (packed) {
                    value(f, x, out, at);
                } else {
                    scalar(f, x, out, at, true);
                }
            }
            if (packed) out.endLength(mark);
        }

        private void single(Schema.Field f, Object v, Wire.Out out, String where) {
            if (f.isMessage()) {
                if (!(v instanceof Map)) throw notMessage(f, v, where);
                out.tag(f.number, Wire.LEN);
                int sub = out.beginLength();
                message(f.message, asObject(v), out, where);
                out.endLength(sub);
            } else {
                scalar(f, v, out, where, f.presence);
            }
        }

        private static BadJson notMessage(Schema.Field f, Object v, String at) {
            return new BadJson("invalid " + f.owner.name + ": field " + f.name + " takes a JSON object (a " + f.message.name
                    + "), not " + kind(v) + ", at " + at, at);
        }

        /** Tag and value of one scalar; a default value is left out unless {@code always} (presence, map entries). */
        private void scalar(Schema.Field f, Object v, Wire.Out out, String at, boolean always) {
            int wt;
            switch (f.type) {
                case Schema.STRING: case Schema.BYTES: wt = Wire.LEN; break;
                case Schema.DOUBLE: case Schema.FIXED64: case Schema.SFIXED64: wt = Wire.I64; break;
                case Schema.FLOAT: case Schema.FIXED32: case Schema.SFIXED32: wt = Wire.I32; break;
                default: wt = Wire.VARINT;
            }
            int start = out.pos;
            out.tag(f.number, wt);
            if (value(f, v, out, at) && !always) out.pos = start; // proto3 leaves a default value out
        }

        /** The value alone (no tag); returns whether it is the field type's default. */
        private boolean value(Schema.Field f, Object v, Wire.Out out, String at) {
            switch (f.type) {
                case Schema.DOUBLE: { double d = toDouble(f, v, at); out.fixedDouble(d); return Double.doubleToRawLongBits(d) == 0; }
                case Schema.FLOAT: { float x = (float) toDouble(f, v, at); out.fixedFloat(x); return Float.floatToRawIntBits(x) == 0; }
                case Schema.BOOL: {
                    if (!(v instanceof Boolean)) throw bad(f, "expected true or false without quotes, not " + show(v), at);
                    boolean b = (Boolean) v;
                    out.varint(b ? 1 : 0);
                    return !b;
                }
                case Schema.STRING: {
                    if (!(v instanceof String)) throw bad(f, "a string field takes a JSON string, not " + show(v), at);
                    String s = (String) v;
                    if (unpairedSurrogate(s)) throw bad(f, "unpaired surrogate", at);
                    out.bytes(s.getBytes(StandardCharsets.UTF_8));
                    return s.isEmpty();
                }
                case Schema.BYTES: {
                    if (!(v instanceof String)) throw bad(f, "a bytes field takes a base64 JSON string, not " + show(v), at);
                    byte[] b = base64((String) v, f, at);
                    out.bytes(b);
                    return b.length == 0;
                }
                case Schema.ENUM: {
                    int n = enumNumber(f, v, at);
                    out.varint(n);
                    return n == 0;
                }
                default: {
                    BigInteger i = toInteger(f, v, at);
                    long l = i.longValue();
                    switch (f.type) {
                        case Schema.INT32: out.varint((int) l); break;
                        case Schema.SINT32: { int n = (int) l; out.varint(((n << 1) ^ (n >> 31)) & 0xFFFFFFFFL); break; }
                        case Schema.SINT64: out.varint((l << 1) ^ (l >> 63)); break;
                        case Schema.FIXED32: case Schema.SFIXED32: out.fixed32((int) l); break;
                        case Schema.FIXED64: case Schema.SFIXED64: out.fixed64(l); break;
                        default: out.varint(l); // int64, uint32, uint64
                    }
                    return l == 0;
                }
            }
        }

        private static BadJson bad(Schema.Field f, String what, String at) {
            return new BadJson("invalid " + f.owner.name + ": " + what + ", at " + at, at);
        }

        private static String show(Object v) {
            if (v instanceof String) return "\"" + v + "\"";
            if (v instanceof Map) return "an object";
            if (v instanceof List) return "a list";
            return String.valueOf(v);
        }

        private static double toDouble(Schema.Field f, Object v, String at) {
            if (v instanceof Boolean) throw bad(f, "a number or enum field takes no true or false", at);
            double d;
            if (v instanceof Num) {
                Num n = (Num) v;
                d = Double.parseDouble(n.text);
                if (Double.isInfinite(d)) {
                    throw bad(f, d > 0 ? "couldn't parse Infinity or value too large, use quoted \"Infinity\" instead"
                            : "couldn't parse -Infinity or value too small, use quoted \"-Infinity\" instead", at);
                }
                if (f.type == Schema.FLOAT && n.fractional && (d > FLOAT_MAX || d < -FLOAT_MAX)) {
                    throw bad(f, d > 0 ? "float value too large" : "float value too small", at);
                }
                return d;
            }
            if (v instanceof String) {
                String s = (String) v;
                switch (s) {
                    case "NaN": return Double.NaN;
                    case "Infinity": return Double.POSITIVE_INFINITY;
                    case "-Infinity": return Double.NEGATIVE_INFINITY;
                    default:
                        if (DECIMAL.matcher(s).matches()) return Double.parseDouble(s);
                        throw bad(f, "couldn't parse float: " + s, at);
                }
            }
            throw bad(f, "a number field takes a JSON number or string, not " + show(v), at);
        }

        private static BigInteger toInteger(Schema.Field f, Object v, String at) {
            if (v instanceof Boolean) throw bad(f, "bool value " + v + " is not acceptable for integer field", at);
            BigInteger i;
            if (v instanceof Num && !((Num) v).fractional) i = new BigInteger(((Num) v).text);
            else if (v instanceof Num) i = integral(Double.parseDouble(((Num) v).text), v, f, at);
            else if (v instanceof String) {
                String s = (String) v;
                if (INTEGER.matcher(s).matches()) i = new BigInteger(s.startsWith("+") ? s.substring(1) : s);
                else if (DECIMAL.matcher(s).matches()) i = integral(Double.parseDouble(s), v, f, at);
                else throw bad(f, "couldn't parse integer: " + show(v), at);
            } else throw bad(f, "an integer field takes a JSON number or string, not " + show(v), at);
            BigInteger lo, hi;
            switch (f.type) {
                case Schema.INT32: case Schema.SINT32: case Schema.SFIXED32: lo = INT32_MIN; hi = INT32_MAX; break;
                case Schema.UINT32: case Schema.FIXED32: lo = BigInteger.ZERO; hi = UINT32_MAX; break;
                case Schema.UINT64: case Schema.FIXED64: lo = BigInteger.ZERO; hi = UINT64_MAX; break;
                default: lo = INT64_MIN; hi = INT64_MAX;
            }
            if (i.compareTo(lo) < 0 || i.compareTo(hi) > 0) throw bad(f, "value out of range: " + i, at);
            return i;
        }

        private static BigInteger integral(double d, Object v, Schema.Field f, String at) {
            if (Double.isNaN(d) || Double.isInfinite(d) || d != Math.rint(d)) throw bad(f, "couldn't parse integer: " + show(v), at);
            return new BigDecimal(d).toBigInteger();
        }

        private static int enumNumber(Schema.Field f, Object v, String at) {
            if (v instanceof Boolean) throw bad(f, "a number or enum field takes no true or false", at);
            if (v instanceof String) {
                Integer n = f.enumDef.byName.get(v);
                if (n != null) return n;
                if (!INTEGER.matcher((String) v).matches()) {
                    throw bad(f, "invalid enum value " + v + " for enum type " + f.enumDef.name, at);
                }
                return int32(new BigInteger(((String) v).replace("+", "")), f, v, at);
            }
            if (v instanceof Num) {
                Num n = (Num) v;
                if (!n.fractional) return int32(new BigInteger(n.text), f, v, at);
                double d = Double.parseDouble(n.text); // Python's int() of a float: towards zero
                if (Double.isNaN(d) || Double.isInfinite(d)) throw bad(f, "invalid enum value " + v + " for enum type " + f.enumDef.name, at);
                return int32(new BigDecimal(d).toBigInteger(), f, v, at);
            }
            throw bad(f, "invalid enum value " + show(v) + " for enum type " + f.enumDef.name, at);
        }

        private static int int32(BigInteger i, Schema.Field f, Object v, String at) {
            if (i.compareTo(INT32_MIN) < 0 || i.compareTo(INT32_MAX) > 0) {
                throw bad(f, "enum value " + v + " out of range for enum type " + f.enumDef.name, at);
            }
            return i.intValue();
        }

        private static byte[] base64(String s, Schema.Field f, String at) {
            String t = s.replace('-', '+').replace('_', '/');
            int end = t.length();
            while (end > 0 && t.charAt(end - 1) == '=') end--;
            try {
                return Base64.getDecoder().decode(t.substring(0, end));
            } catch (IllegalArgumentException e) {
                throw bad(f, "not base64: " + e.getMessage(), at);
            }
        }
    }

    static boolean unpairedSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) i++;
                else return true;
            } else if (Character.isLowSurrogate(c)) return true;
        }
        return false;
    }

    // ------------------------------------------------------------------------------------------ wire -> JSON

    static final class Printer {
        /** One field's values as read from the wire: numbers (raw bits), or [start, end) byte ranges. */
        static final class Values {
            long[] nums = new long[4];
            int n;
            void add(long v) {
                if (n == nums.length) nums = java.util.Arrays.copyOf(nums, n * 2);
                nums[n++] = v;
            }
        }

        static void message(StringBuilder sb, Schema.Msg m, Wire.In in, int end, boolean jsonFormatOrder) {
            List<Schema.Field> fields = m.fields;
            Values[] vals = new Values[fields.size()];
            // merged singular sub-messages (the same field sent twice): their concatenated bytes
            byte[][] merged = null;
            in.enter();
            int level = in.depth;
            while (in.pos < end) {
                int tag = in.tag();
                int number = tag >>> 3, wt = tag & 7;
                int idx = index(m, number);
                if (idx < 0 || !read(fields.get(idx), wt, in, end, vals, idx)) {
                    if (wt == Wire.EGROUP) throw new Wire.WireException("end of group " + number + " without its start");
                    in.skip(number, wt, end);
                }
            }
            if (in.pos != end) throw new Wire.WireException("a message overruns its length");
            in.leave();
            sb.append('{');
            boolean first = true;
            if (!jsonFormatOrder) {
                for (int i = 0; i < fields.size(); i++) {
                    Schema.Field f = fields.get(i);
                    if (f.presence && !f.repeated && vals[i] == null) continue;
                    first = field(sb, f, vals[i], in.buf, first, false, level);
                }
            } else {
                // json_format's order (what Python prints inside a map's message values): fields that are set
                // by number, then the ones without presence left at their default, in declaration order
                boolean[] done = new boolean[fields.size()];
                Integer[] order = new Integer[fields.size()];
                for (int i = 0; i < order.length; i++) order[i] = i;
                java.util.Arrays.sort(order, (a, b) -> Integer.compare(fields.get(a).number, fields.get(b).number));
                for (int i : order) {
                    Schema.Field f = fields.get(i);
                    if (vals[i] == null || vals[i].n == 0 || (!f.presence && !f.repeated && isDefault(f, vals[i]))) continue;
                    done[i] = true;
                    first = field(sb, f, vals[i], in.buf, first, true, level);
                }
                for (int i = 0; i < fields.size(); i++) {
                    Schema.Field f = fields.get(i);
                    if (done[i] || (f.presence && !f.repeated)) continue;
                    first = field(sb, f, vals[i], in.buf, first, true, level);
                }
            }
            sb.append('}');
        }

        private static int index(Schema.Msg m, int number) {
            List<Schema.Field> fs = m.fields;
            for (int i = 0; i < fs.size(); i++) if (fs.get(i).number == number) return i;
            return -1;
        }

        private static int wireType(int type) {
            switch (type) {
                case Schema.DOUBLE: case Schema.FIXED64: case Schema.SFIXED64: return Wire.I64;
                case Schema.FLOAT: case Schema.FIXED32: case Schema.SFIXED32: return Wire.I32;
                case Schema.STRING: case Schema.BYTES: case Schema.MESSAGE: return Wire.LEN;
                default: return Wire.VARINT;
            }
        }

        /** Reads one occurrence of field {@code f}; false when its wire type does not fit (an unknown field then). */
        private static boolean read(Schema.Field f, int wt, Wire.In in, int end, Values[] vals, int idx) {
            int expected = wireType(f.type);
            Values v = vals[idx];
            if (v == null) v = vals[idx] = new Values();
            if (wt == expected) {
                if (wt == Wire.LEN) {
                    int len = in.length(end);
                    if (f.type == Schema.STRING) {
                        int p = in.pos;
                        try {
                            Wire.checkUtf8(in.buf, p, p + len);
                        } catch (Wire.BadUtf8 e) {
                            throw new Wire.WireException("string field " + f.where() + " is not valid UTF-8");
                        }
                    }
                    if (!f.repeated && f.type != Schema.MESSAGE) v.n = 0; // last one wins
                    v.add(((long) in.pos << 32) | (in.pos + len));
                    in.pos += len;
                } else {
                    if (!f.repeated) v.n = 0;
                    v.add(scalar(f, in));
                }
                return true;
            }
            if (wt == Wire.LEN && f.repeated && expected != Wire.LEN) { // packed
                int len = in.length(end);
                int stop = in.pos + len;
                while (in.pos < stop) v.add(scalar(f, in));
                in.expectEnd(stop, "a packed field");
                return true;
            }
            if (v.n == 0) vals[idx] = null;
            return false;
        }

        private static long scalar(Schema.Field f, Wire.In in) {
            switch (wireType(f.type)) {
                case Wire.I64: return in.fixed64();
                case Wire.I32: return in.fixed32() & 0xFFFFFFFFL;
                default: return in.varint64();
            }
        }

        private static boolean isDefault(Schema.Field f, Values v) {
            long x = v.nums[v.n - 1];
            switch (f.type) {
                case Schema.MESSAGE: return false;
                case Schema.STRING: case Schema.BYTES: return (int) (x >>> 32) == (int) x;
                case Schema.INT32: case Schema.UINT32: case Schema.SINT32: case Schema.ENUM: case Schema.FIXED32:
                case Schema.SFIXED32: case Schema.FLOAT:
                    return (int) x == 0;
                default: return x == 0; // -0.0 is set (its bits are not zero), as upb sees it
            }
        }

        private static boolean field(StringBuilder sb, Schema.Field f, Values v, byte[] buf, boolean first, boolean jf, int depth) {
            if (!first) sb.append(", ");
            Json.quote(sb, f.name);
            sb.append(": ");
            if (f.isMap()) {
                map(sb, f, v, buf, depth);
            } else if (f.repeated) {
                sb.append('[');
                if (v != null) {
                    for (int i = 0; i < v.n; i++) {
                        if (i > 0) sb.append(", ");
                        one(sb, f, v.nums[i], buf, jf, depth);
                    }
                }
                sb.append(']');
            } else if (f.type == Schema.MESSAGE) {
                messageValue(sb, f.message, v, buf, jf, depth);
            } else {
                one(sb, f, v == null || v.n == 0 ? 0L : v.nums[v.n - 1], buf, jf, depth);
            }
            return false;
        }


        /** A singular message field: its occurrences merged (their bytes concatenated, as protobuf merges). */
        private static void messageValue(StringBuilder sb, Schema.Msg m, Values v, byte[] buf, boolean jf, int depth) {
            if (v.n == 1) { sub(sb, m, buf, v.nums[0], jf, depth); return; }
            int total = 0;
            for (int i = 0; i < v.n; i++) total += (int) v.nums[i] - (int) (v.nums[i] >>> 32);
            byte[] joined = new byte[total];
            int p = 0;
            for (int i = 0; i < v.n; i++) {
                int s = (int) (v.nums[i] >>> 32), e = (int) v.nums[i];
                System.arraycopy(buf, s, joined, p, e - s);
                p += e - s;
            }
            Wire.In in = new Wire.In(joined);
            in.depth = depth;
            message(sb, m, in, joined.length, jf);
        }

        private static void sub(StringBuilder sb, Schema.Msg m, byte[] buf, long range, boolean jf, int depth) {
            Wire.In in = new Wire.In(buf);
            in.pos = (int) (range >>> 32);
            in.depth = depth;
            message(sb, m, in, (int) range, jf);
        }

        private static void map(StringBuilder sb, Schema.Field f, Values v, byte[] buf, int depth) {
            sb.append('{');
            if (v != null) {
                Schema.Field kf = f.message.field(1), vf = f.message.field(2);
                // a key sent twice: its last value, in its first place (as a Python dict)
                Map<String, Object[]> entries = new LinkedHashMap<>();
                for (int i = 0; i < v.n; i++) {
                    int s = (int) (v.nums[i] >>> 32), e = (int) v.nums[i];
                    Wire.In in = new Wire.In(buf);
                    in.pos = s;
                    in.depth = depth;
                    in.enter();
                    Values[] kv = new Values[2];
                    List<Schema.Field> both = List.of(kf, vf);
                    while (in.pos < e) {
                        int tag = in.tag();
                        int number = tag >>> 3, wt = tag & 7;
                        int idx = number == 1 ? 0 : number == 2 ? 1 : -1;
                        if (idx < 0 || !read(both.get(idx), wt, in, e, kv, idx)) in.skip(number, wt, e);
                    }
                    in.expectEnd(e, "a map entry");
                    String key = key(kf, kv[0], buf);
                    entries.put(key, new Object[] {kv[1], in.depth});
                }
                boolean first = true;
                for (Map.Entry<String, Object[]> en : entries.entrySet()) {
                    if (!first) sb.append(", ");
                    first = false;
                    Json.quote(sb, en.getKey());
                    sb.append(": ");
                    Values val = (Values) en.getValue()[0];
                    int d = (Integer) en.getValue()[1];
                    if (vf.type == Schema.MESSAGE) {
                        if (val == null) { Wire.In empty = new Wire.In(Slot.EMPTY); empty.depth = d; message(sb, vf.message, empty, 0, true); }
                        else messageValue(sb, vf.message, val, buf, true, d);
                    } else {
                        one(sb, vf, val == null ? 0L : val.nums[val.n - 1], buf, true, d);
                    }
                }
            }
            sb.append('}');
        }

        private static String key(Schema.Field kf, Values v, byte[] buf) {
            long x = v == null ? 0L : v.nums[v.n - 1];
            switch (kf.type) {
                case Schema.STRING: return v == null ? "" : new String(buf, (int) (x >>> 32), (int) x - (int) (x >>> 32), StandardCharsets.UTF_8);
                case Schema.BOOL: return x != 0 ? "true" : "false";
                default: return integer(kf, x);
            }
        }

        private static String integer(Schema.Field f, long x) {
            switch (f.type) {
                case Schema.INT32: case Schema.SFIXED32: return Integer.toString((int) x);
                case Schema.SINT32: { int n = (int) x; return Integer.toString((n >>> 1) ^ -(n & 1)); }
                case Schema.UINT32: case Schema.FIXED32: return Long.toString(x & 0xFFFFFFFFL);
                case Schema.SINT64: return Long.toString((x >>> 1) ^ -(x & 1));
                case Schema.UINT64: case Schema.FIXED64: return Long.toUnsignedString(x);
                default: return Long.toString(x);
            }
        }

        private static void one(StringBuilder sb, Schema.Field f, long x, byte[] buf, boolean jf, int depth) {
            switch (f.type) {
                case Schema.DOUBLE: number(sb, Double.longBitsToDouble(x), false); return;
                case Schema.FLOAT: number(sb, Float.intBitsToFloat((int) x), true); return;
                case Schema.BOOL: sb.append(x != 0 ? "true" : "false"); return;
                case Schema.STRING: {
                    if (x == 0) { sb.append("\"\""); return; }
                    int s = (int) (x >>> 32), e = (int) x;
                    Json.quote(sb, new String(buf, s, e - s, StandardCharsets.UTF_8));
                    return;
                }
                case Schema.BYTES: {
                    int s = (int) (x >>> 32), e = (int) x;
                    sb.append('"').append(Base64.getEncoder().encodeToString(java.util.Arrays.copyOfRange(buf, s, e))).append('"');
                    return;
                }
                case Schema.ENUM: {
                    String name = f.enumDef.byNumber.get((int) x);
                    if (name != null) Json.quote(sb, name); else sb.append((int) x);
                    return;
                }
                case Schema.MESSAGE: sub(sb, f.message, buf, x, jf, depth); return;
                case Schema.INT64: case Schema.SINT64: case Schema.SFIXED64: case Schema.UINT64: case Schema.FIXED64:
                    sb.append('"').append(integer(f, x)).append('"');
                    return;
                default: sb.append(integer(f, x));
            }
        }
    }

    // ------------------------------------------------------------------------------------------ numbers

    /** A double (or a float: protobuf's ToShortestFloat first) as Python's json.dumps prints it; NaN and the infinities quoted. */
    static void number(StringBuilder sb, double d, boolean isFloat) {
        if (Double.isNaN(d)) { sb.append("\"NaN\""); return; }
        if (Double.isInfinite(d)) { sb.append(d > 0 ? "\"Infinity\"" : "\"-Infinity\""); return; }
        if (d == 0) { sb.append(Double.doubleToRawLongBits(d) < 0 ? "-0.0" : "0.0"); return; }
        if (d < 0) sb.append('-');
        double a = Math.abs(d);
        String digits;
        int exp; // the value is 0.DIGITS x 10^exp
        if (isFloat) {
            BigDecimal r = shortestFloat((float) a);
            digits = r.unscaledValue().toString();
            exp = digits.length() - r.scale();
        } else {
            BigDecimal r = shortestDouble(a);
            digits = r.unscaledValue().toString();
            exp = digits.length() - r.scale();
        }
        int end = digits.length();
        while (end > 1 && digits.charAt(end - 1) == '0') end--;
        repr(sb, digits.substring(0, end), exp);
    }

    /** Python's float repr of 0.DIGITS x 10^exp (DIGITS without trailing zeros). */
    static void repr(StringBuilder sb, String digits, int exp) {
        int n = digits.length();
        if (exp > -4 && exp <= 16) {
            if (exp <= 0) {
                sb.append("0.");
                for (int i = exp; i < 0; i++) sb.append('0');
                sb.append(digits);
            } else if (exp >= n) {
                sb.append(digits);
                for (int i = n; i < exp; i++) sb.append('0');
                sb.append(".0");
            } else {
                sb.append(digits, 0, exp).append('.').append(digits, exp, n);
            }
            return;
        }
        sb.append(digits.charAt(0));
        if (n > 1) sb.append('.').append(digits, 1, n);
        int e = exp - 1;
        sb.append(e < 0 ? "e-" : "e+");
        int ae = Math.abs(e);
        if (ae < 10) sb.append('0');
        sb.append(ae);
    }

    /**
     * The shortest decimal that reads back as {@code a} (positive, finite), the nearest one among equals: what
     * Python's repr gives. Double.toString gives a decimal that reads back, not always the shortest (JDK 17):
     * up to 15 digits (of a normal double) it is the only one of its length and the shortest; beyond, and for
     * subnormals, shorter lengths are tried.
     */
    static BigDecimal shortestDouble(double a) {
        BigDecimal fast = Shortest.of(a);
        return fast != null ? fast : shortestDoubleSlowly(a);
    }

    static BigDecimal shortestDoubleSlowly(double a) {
        String t = Double.toString(a);
        int ePos = t.indexOf('E');
        String mant = ePos < 0 ? t : t.substring(0, ePos);
        int texp = ePos < 0 ? 0 : Integer.parseInt(t.substring(ePos + 1));
        BigDecimal given = new BigDecimal(mant).scaleByPowerOfTen(texp).stripTrailingZeros();
        int n = given.precision();
        if (n <= 15 && a >= Double.MIN_NORMAL) return given; // subnormals have fewer digits of their own
        BigDecimal exact = new BigDecimal(a);
        BigDecimal best = readsBack(exact, n, a);
        if (best == null) best = given;
        for (int p = n - 1; p >= 1; p--) {
            BigDecimal c = readsBack(exact, p, a);
            if (c == null) break;
            best = c;
        }
        return best;
    }

    /**
     * {@link #shortestDouble} in long arithmetic: the decimals near Double.toString's are compared exactly with
     * the double and the bounds of the values that read back as it (128-bit products); null when the double
     * is subnormal or the powers of ten or five involved leave that range (then BigDecimal does it).
     */
    static final class Shortest {
        static final long[] POW5 = new long[28], POW10 = new long[19];
        static final int OUT = 2; // a comparison out of range

        static {
            POW5[0] = 1;
            for (int i = 1; i < POW5.length; i++) POW5[i] = POW5[i - 1] * 5;
            POW10[0] = 1;
            for (int i = 1; i < POW10.length; i++) POW10[i] = POW10[i - 1] * 10;
        }

        /** The sign of C x 10^k - B x 2^q (C, B positive, below 2^63), or OUT. */
        static int cmp(long c, int k, long b, int q) {
            long xHi, xLo, yHi, yLo;
            if (k >= 0) {
                if (k >= POW5.length) return OUT;
                xLo = c * POW5[k];
                xHi = Math.multiplyHigh(c, POW5[k]);
                yHi = 0;
                yLo = b;
            } else {
                if (-k >= POW5.length) return OUT;
                xHi = 0;
                xLo = c;
                yLo = b * POW5[-k];
                yHi = Math.multiplyHigh(b, POW5[-k]);
            }
            // X x 2^k against Y x 2^q
            int bx = bits(xHi, xLo) + k, by = bits(yHi, yLo) + q;
            if (bx != by) return bx > by ? 1 : -1;
            int d = k - q;
            if (d > 0) { // shift X left by d (it stays within 128 bits: same length as Y)
                if (d >= 64) { xHi = xLo << (d - 64); xLo = 0; } else { xHi = (xHi << d) | (xLo >>> (64 - d)); xLo <<= d; }
            } else if (d < 0) {
                d = -d;
                if (d >= 64) { yHi = yLo << (d - 64); yLo = 0; } else { yHi = (yHi << d) | (yLo >>> (64 - d)); yLo <<= d; }
            }
            int h = Long.compareUnsigned(xHi, yHi);
            if (h != 0) return h > 0 ? 1 : -1;
            int l = Long.compareUnsigned(xLo, yLo);
            return l > 0 ? 1 : l < 0 ? -1 : 0;
        }

        static int bits(long hi, long lo) {
            return hi != 0 ? 128 - Long.numberOfLeadingZeros(hi) : 64 - Long.numberOfLeadingZeros(lo);
        }

        final long m, lowB, upB;
        final int q, lowQ, upQ;
        final boolean even;

        private Shortest(long m, int q, boolean halfLowGap) {
            this.m = m; this.q = q; this.even = (m & 1) == 0;
            upB = 2 * m + 1; upQ = q - 1;
            if (halfLowGap) { lowB = 4 * m - 1; lowQ = q - 2; } else { lowB = 2 * m - 1; lowQ = q - 1; }
        }

        /** Whether C x 10^k reads back as the double (1), not (0), or OUT. */
        int reads(long c, int k) {
            int lo = cmp(c, k, lowB, lowQ), up = cmp(c, k, upB, upQ);
            if (lo == OUT || up == OUT) return OUT;
            return (lo > 0 || (lo == 0 && even)) && (up < 0 || (up == 0 && even)) ? 1 : 0;
        }

        static BigDecimal of(double a) {
            long raw = Double.doubleToRawLongBits(a);
            int be = (int) ((raw >>> 52) & 0x7FF);
            if (be == 0) return null; // subnormal
            long f = raw & ((1L << 52) - 1);
            Shortest s = new Shortest(f | (1L << 52), be - 1075, f == 0 && be > 1);
            // Double.toString's decimal: D x 10^E, reads back as a (its length n, not always the shortest)
            String t = Double.toString(a);
            int ePos = t.indexOf('E');
            int exp = ePos < 0 ? 0 : Integer.parseInt(t.substring(ePos + 1));
            long d = 0;
            int n = 0, point = -1, end = ePos < 0 ? t.length() : ePos;
            boolean leading = true;
            for (int i = 0; i < end; i++) {
                char ch = t.charAt(i);
                if (ch == '.') { point = i; continue; }
                if (leading && ch == '0') continue;
                leading = false;
                if (++n > 18) return null;
                d = d * 10 + (ch - '0');
            }
            int fracDigits = point < 0 ? 0 : end - point - 1; // digits after the point, zeros included
            int e = exp - fracDigits;
            while (d != 0 && d % 10 == 0) { d /= 10; e++; n--; }
            if (d == 0) return null;
            if (n <= 15) return BigDecimal.valueOf(d, -e);
            if (n > 17) return null;
            // the shortest length r: shorter while a decimal of that length reads back
            int r = n;
            for (int p = n - 1; p >= 1; p--) {
                int drop = n - p;
                long tr = d / POW10[drop];
                boolean found = false;
                for (long c = tr - 2; c <= tr + 2 && !found; c++) {
                    if (c <= 0) continue;
                    int x = s.reads(c, e + drop);
                    if (x == OUT) return null;
                    found = x == 1;
                }
                if (!found) break;
                r = p;
            }
            // of that length, the one nearest to a: floor F (F x 10^k <= a < (F + 1) x 10^k), then F or F + 1
            int k = e + (n - r);
            long lo = d / POW10[n - r];
            int c;
            int steps = 0;
            while ((c = cmp(lo, k, s.m, s.q)) > 0) {
                if (c == OUT || ++steps > 40) return null;
                lo--;
            }
            if (c == OUT) return null;
            if (c != 0) {
                while (true) {
                    int c2 = cmp(lo + 1, k, s.m, s.q);
                    if (c2 == OUT || ++steps > 40) return null;
                    if (c2 > 0) break;
                    lo++;
                    if (c2 == 0) { c = 0; break; }
                }
            }
            long best, other;
            if (c == 0) { best = lo; other = lo; }
            else {
                int mid = cmp(10 * lo + 5, k - 1, s.m, s.q);
                if (mid == OUT) return null;
                boolean up = mid < 0 || (mid == 0 && (lo & 1) == 1);
                best = up ? lo + 1 : lo;
                other = up ? lo : lo + 1;
            }
            int x = s.reads(best, k);
            if (x == OUT) return null;
            if (x == 0) {
                x = s.reads(other, k);
                if (x != 1) return null;
                best = other;
            }
            return BigDecimal.valueOf(best, -k);
        }
    }

    /** The {@code p}-digit decimal nearest to {@code exact} that reads back as {@code a}, or null. */
    private static BigDecimal readsBack(BigDecimal exact, int p, double a) {
        BigDecimal near = exact.round(new MathContext(p, RoundingMode.HALF_EVEN));
        if (Double.parseDouble(near.toString()) == a) return near;
        BigDecimal other = near.compareTo(exact) >= 0 ? exact.round(new MathContext(p, RoundingMode.FLOOR))
                : exact.round(new MathContext(p, RoundingMode.CEILING));
        return Double.parseDouble(other.toString()) == a ? other : null;
    }

    /** protobuf's ToShortestFloat: the value with 6, 7, 8 or 9 significant digits (the fewest) that is the float again. */
    static BigDecimal shortestFloat(float f) {
        BigDecimal exact = new BigDecimal((double) f);
        for (int p = 6; p < 9; p++) {
            BigDecimal r = exact.round(new MathContext(p, RoundingMode.HALF_EVEN));
            if ((float) Double.parseDouble(r.toString()) == f) return r;
        }
        return exact.round(new MathContext(9, RoundingMode.HALF_EVEN));
    }
}
