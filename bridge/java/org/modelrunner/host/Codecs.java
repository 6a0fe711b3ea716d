package org.modelrunner.host;

import java.lang.invoke.MethodHandle;
import java.lang.reflect.Array;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Runtime converters between the protobuf wire format and Java values. Built once per rpc by {@link Binder};
 * immutable afterwards, so calls on many threads share them.
 */
final class Codecs {
    private Codecs() {}

    // ------------------------------------------------------------------ scalars

    /** One scalar proto field (or one element of a repeated one) bound to one Java class. */
    static final class ScalarConv {
        static final int T_DOUBLE = 0, T_FLOAT = 1, T_LONG = 2, T_INT = 3, T_SHORT = 4, T_BYTE = 5, T_BOOL = 6,
                T_STRING = 7, T_BYTES = 8, T_ENUM = 9, T_OBJECT = 10, T_CHAR = 11;
        final Schema.Field f;
        final int ptype, tk;
        final boolean primitive;
        final Map<Integer, Object> enumIn = new HashMap<>();   // proto number -> Java constant
        final Map<Object, Integer> enumOut = new HashMap<>();  // Java constant -> proto number
        Map<String, Object> javaEnumByName;                    // string field <-> Java enum

        ScalarConv(Schema.Field f, int tk, boolean primitive) {
            this.f = f; this.ptype = f.type; this.tk = tk; this.primitive = primitive;
        }

        int wireType() {
            switch (ptype) {
                case Schema.DOUBLE: case Schema.FIXED64: case Schema.SFIXED64: return Wire.I64;
                case Schema.FLOAT: case Schema.FIXED32: case Schema.SFIXED32: return Wire.I32;
                case Schema.STRING: case Schema.BYTES: return Wire.LEN;
                default: return Wire.VARINT;
            }
        }

        boolean packable() { return ptype != Schema.STRING && ptype != Schema.BYTES; }

        private boolean is64() {
            return ptype == Schema.INT64 || ptype == Schema.UINT64 || ptype == Schema.SINT64
                    || ptype == Schema.FIXED64 || ptype == Schema.SFIXED64;
        }

        Object read(Wire.In in, int end) {
            switch (ptype) {
                case Schema.DOUBLE: return ofDouble(in.fixedDouble());
                case Schema.FLOAT: return ofDouble(in.fixedFloat());
                case Schema.STRING: {
                    String s;
                    try {
                        s = in.string(end);
                    } catch (Wire.BadUtf8 e) {
                        throw new Wire.WireException("string field " + f.where() + " is not valid UTF-8 (byte " + e.offset + ")");
                    }
                    return ofString(s);
                }
                case Schema.BYTES: return in.bytes(end);
                case Schema.BOOL: return in.varint64() != 0;
                case Schema.ENUM: return ofEnum((int) in.varint64());
                default: return ofLong(readIntegral(in));
            }
        }

        long readIntegral(Wire.In in) {
            switch (ptype) {
                case Schema.INT32: return (int) in.varint64();
                case Schema.UINT32: return in.varint64() & 0xFFFFFFFFL;
                case Schema.SINT32: { int n = (int) in.varint64(); return (n >>> 1) ^ -(n & 1); }
                case Schema.SINT64: { long n = in.varint64(); return (n >>> 1) ^ -(n & 1); }
                case Schema.FIXED32: return in.fixed32() & 0xFFFFFFFFL;
                case Schema.SFIXED32: return in.fixed32();
                case Schema.FIXED64: case Schema.SFIXED64: return in.fixed64();
                default: return in.varint64();
            }
        }

        Object ofLong(long l) {
            switch (tk) {
                case T_DOUBLE: return (double) l;
                case T_FLOAT: return (float) l;
                case T_LONG: return l;
                case T_INT: return (int) l;
                case T_SHORT: return (short) l;
                case T_BYTE: return (byte) l;
                default: return is64() ? (Object) l : (Object) (int) l;
            }
        }

        Object ofDouble(double d) {
            switch (tk) {
                case T_DOUBLE: return d;
                case T_FLOAT: return (float) d;
                case T_LONG: return (long) d;
                case T_INT: return (int) d;
                case T_SHORT: return (short) d;
                case T_BYTE: return (byte) d;
                default: return ptype == Schema.FLOAT ? (Object) (float) d : (Object) d;
            }
        }

        Object ofString(String s) {
            if (tk == T_ENUM) return javaEnumByName.get(s);
            if (tk == T_CHAR) return s.isEmpty() ? '\0' : s.charAt(0);
            return s;
        }

        Object ofEnum(int n) {
            switch (tk) {
                case T_ENUM: return enumIn.get(n);
                case T_INT: return n;
                case T_LONG: return (long) n;
                default: {
                    String name = f.enumDef.byNumber.get(n);
                    return name != null ? name : String.valueOf(n);
                }
            }
        }

        Object defaultValue() {
            if (f.presence && !primitive) return null;
            switch (tk) {
                case T_DOUBLE: return 0.0;
                case T_FLOAT: return 0f;
                case T_LONG: return 0L;
                case T_INT: return 0;
                case T_SHORT: return (short) 0;
                case T_BYTE: return (byte) 0;
                case T_BOOL: return false;
                case T_CHAR: return '\0';
                case T_STRING: return ptype == Schema.ENUM ? ofEnum(0) : "";
                case T_BYTES: return new byte[0];
                case T_ENUM: return ptype == Schema.ENUM ? enumIn.get(0) : null;
                default:
                    switch (ptype) {
                        case Schema.STRING: return "";
                        case Schema.BYTES: return new byte[0];
                        case Schema.BOOL: return false;
                        case Schema.ENUM: return ofEnum(0);
                        case Schema.DOUBLE: case Schema.FLOAT: return ofDouble(0);
                        default: return ofLong(0);
                    }
            }
        }

        static double toDouble(Object v) {
            if (v instanceof Number) return ((Number) v).doubleValue();
            if (v instanceof Boolean) return ((Boolean) v) ? 1 : 0;
            if (v instanceof Character) return (Character) v;
            return Double.parseDouble(v.toString().trim());
        }

        static long toLong(Object v) {
            if (v instanceof Double || v instanceof Float) return (long) ((Number) v).doubleValue();
            if (v instanceof Number) return ((Number) v).longValue();
            if (v instanceof Boolean) return ((Boolean) v) ? 1 : 0;
            if (v instanceof Character) return (Character) v;
            String s = v.toString().trim();
            try { return Long.parseLong(s); } catch (NumberFormatException e) { return (long) Double.parseDouble(s); }
        }

        static boolean toBool(Object v) {
            if (v instanceof Boolean) return (Boolean) v;
            if (v instanceof Number) return ((Number) v).doubleValue() != 0;
            return Boolean.parseBoolean(v.toString().trim());
        }

        static String toStr(Object v) {
            if (v instanceof String) return (String) v;
            if (v instanceof Enum) return ((Enum<?>) v).name();
            return String.valueOf(v);
        }

        int toEnumNumber(Object v) {
            if (v instanceof Number) return ((Number) v).intValue();
            Integer n = v instanceof Enum ? enumOut.get(v) : null;
            if (n == null) {
                String name = toStr(v);
                n = f.enumDef.byName.get(name);
                if (n == null) n = f.enumDef.byName.get(enumPrefix(f.enumDef) + name);
            }
            if (n == null) throw new IllegalArgumentException("value " + v + " has no number in proto enum "
                    + f.enumDef.name + " (field " + f.where() + ")");
            return n;
        }

        boolean isDefault(Object v) {
            switch (ptype) {
                case Schema.DOUBLE: case Schema.FLOAT: return Double.doubleToRawLongBits(toDouble(v)) == 0;
                case Schema.BOOL: return !toBool(v);
                case Schema.STRING: return toStr(v).isEmpty();
                case Schema.BYTES: return ((byte[]) v).length == 0;
                case Schema.ENUM: return toEnumNumber(v) == 0;
                default: return toLong(v) == 0;
            }
        }

        void writeRaw(Object v, Wire.Out out) {
            switch (ptype) {
                case Schema.DOUBLE: out.fixedDouble(toDouble(v)); break;
                case Schema.FLOAT: out.fixedFloat((float) toDouble(v)); break;
                case Schema.STRING: out.bytes(toStr(v).getBytes(StandardCharsets.UTF_8)); break;
                case Schema.BYTES: out.bytes(v instanceof byte[] ? (byte[]) v : toStr(v).getBytes(StandardCharsets.UTF_8)); break;
                case Schema.BOOL: out.varint(toBool(v) ? 1 : 0); break;
                case Schema.ENUM: out.varint(toEnumNumber(v)); break;
                case Schema.INT32: out.varint((int) toLong(v)); break;
                case Schema.UINT32: out.varint(toLong(v) & 0xFFFFFFFFL); break;
                case Schema.SINT32: { int n = (int) toLong(v); out.varint(((n << 1) ^ (n >> 31)) & 0xFFFFFFFFL); break; }
                case Schema.SINT64: { long n = toLong(v); out.varint((n << 1) ^ (n >> 63)); break; }
                case Schema.FIXED32: case Schema.SFIXED32: out.fixed32((int) toLong(v)); break;
                case Schema.FIXED64: case Schema.SFIXED64: out.fixed64(toLong(v)); break;
                default: out.varint(toLong(v));
            }
        }
    }

    static String enumPrefix(Schema.EnumDef e) {
        String simple = e.name.substring(e.name.lastIndexOf('.') + 1);
        return Props.snake(simple).toUpperCase(java.util.Locale.ROOT) + "_";
    }

    // ------------------------------------------------------------------ fields

    /** One proto field bound to one Java type; decoding keeps a per-message state (value or accumulator). */
    abstract static class FieldCodec {
        final Schema.Field f;
        FieldCodec(Schema.Field f) { this.f = f; }
        abstract Object read(Wire.In in, int wt, int end, Object state) throws Throwable;
        abstract Object finish(Object state);
        abstract void write(Object v, Wire.Out out) throws Throwable;
    }

    static final class SingularScalar extends FieldCodec {
        final ScalarConv c;
        final int wt;
        SingularScalar(Schema.Field f, ScalarConv c) { super(f); this.c = c; this.wt = c.wireType(); }

        Object read(Wire.In in, int w, int end, Object state) {
            if (w != wt) { in.skip(f.number, w, end); return state; }
            return c.read(in, end);
        }

        Object finish(Object state) { return state == null ? c.defaultValue() : state; }

        void write(Object v, Wire.Out out) {
            if (v == null || (!f.presence && c.isDefault(v))) return;
            out.tag(f.number, wt);
            c.writeRaw(v, out);
        }
    }

    static final class SingularMessage extends FieldCodec {
        final MsgCodec mc;
        SingularMessage(Schema.Field f, MsgCodec mc) { super(f); this.mc = mc; }

        Object read(Wire.In in, int w, int end, Object state) throws Throwable {
            if (w != Wire.LEN) { in.skip(f.number, w, end); return state; }
            int len = in.length(end);
            int e = in.pos + len;
            in.enter();
            Object v = mc.read(in, e);
            in.leave();
            in.pos = e;
            return v;
        }

        Object finish(Object state) { return state == null ? mc.absent() : state; }

        void write(Object v, Wire.Out out) throws Throwable {
            if (v == null) return;
            out.tag(f.number, Wire.LEN);
            int mark = out.beginLength();
            mc.write(v, out);
            out.endLength(mark);
        }
    }

    static final class OptionalField extends FieldCodec {
        final FieldCodec inner;
        OptionalField(FieldCodec inner) { super(inner.f); this.inner = inner; }
        Object read(Wire.In in, int w, int end, Object state) throws Throwable { return inner.read(in, w, end, state); }
        Object finish(Object state) {
            if (state == null && f.presence) return Optional.empty();
            return Optional.ofNullable(inner.finish(state));
        }
        void write(Object v, Wire.Out out) throws Throwable {
            if (v instanceof Optional && ((Optional<?>) v).isPresent()) inner.write(((Optional<?>) v).get(), out);
        }
    }

    static final int C_LIST = 0, C_SET = 1, C_ARRAY = 2;

    /** Iterates a Java collection, iterable or array. */
    static Iterable<?> elements(Object v) {
        if (v instanceof Iterable) return (Iterable<?>) v;
        if (v instanceof Object[]) return Arrays.asList((Object[]) v);
        if (v.getClass().isArray()) {
            int n = Array.getLength(v);
            List<Object> l = new ArrayList<>(n);
            for (int i = 0; i < n; i++) l.add(Array.get(v, i));
            return l;
        }
        throw new IllegalArgumentException("expected a collection or array, got " + v.getClass().getName());
    }

    static boolean isEmpty(Object v) {
        if (v instanceof Collection) return ((Collection<?>) v).isEmpty();
        if (v.getClass().isArray()) return Array.getLength(v) == 0;
        return !((Iterable<?>) v).iterator().hasNext();
    }

    static final class Repeated extends FieldCodec {
        final ScalarConv sc;
        final MsgCodec mc;
        final int container;
        final Class<?> component;

        Repeated(Schema.Field f, ScalarConv sc, MsgCodec mc, int container, Class<?> component) {
            super(f); this.sc = sc; this.mc = mc; this.container = container; this.component = component;
        }

        @SuppressWarnings("unchecked")
        Object read(Wire.In in, int w, int end, Object state) throws Throwable {
            ArrayList<Object> l = state == null ? new ArrayList<>() : (ArrayList<Object>) state;
            if (sc != null) {
                if (w == Wire.LEN && sc.packable()) {
                    int len = in.length(end);
                    int e = in.pos + len;
                    while (in.pos < e) l.add(sc.read(in, e));
                    in.expectEnd(e, "packed field " + f.where());
                } else if (w == sc.wireType()) l.add(sc.read(in, end));
                else in.skip(f.number, w, end);
            } else {
                if (w != Wire.LEN) { in.skip(f.number, w, end); return l; }
                int len = in.length(end);
                int e = in.pos + len;
                in.enter();
                Object v = mc.read(in, e);
                in.leave();
                in.pos = e;
                l.add(v);
            }
            return l;
        }

        Object finish(Object state) {
            ArrayList<?> l = state == null ? new ArrayList<>() : (ArrayList<?>) state;
            switch (container) {
                case C_SET: return new LinkedHashSet<>(l);
                case C_ARRAY: {
                    Object a = Array.newInstance(component, l.size());
                    for (int i = 0; i < l.size(); i++) Array.set(a, i, l.get(i));
                    return a;
                }
                default: return l;
            }
        }

        void write(Object v, Wire.Out out) throws Throwable {
            if (v == null || isEmpty(v)) return;
            if (sc != null && sc.packable()) {
                out.tag(f.number, Wire.LEN);
                int mark = out.beginLength();
                for (Object e : elements(v)) {
                    if (e == null) throw new IllegalArgumentException("null element in repeated field " + f.where());
                    sc.writeRaw(e, out);
                }
                out.endLength(mark);
                return;
            }
            for (Object e : elements(v)) {
                if (e == null) throw new IllegalArgumentException("null element in repeated field " + f.where());
                if (sc != null) {
                    out.tag(f.number, sc.wireType());
                    sc.writeRaw(e, out);
                } else {
                    out.tag(f.number, Wire.LEN);
                    int mark = out.beginLength();
                    mc.write(e, out);
                    out.endLength(mark);
                }
            }
        }
    }

    /** The values of a repeated double field while its message is decoded: grows by doubling (linear in
     * the values however they arrive: packed runs or one value per tag). */
    static final class DoubleAcc {
        double[] a;
        int n;
        DoubleAcc(int capacity) { a = new double[Math.max(capacity, 4)]; }
        void room(int more) { if (a.length - n < more) a = Arrays.copyOf(a, Math.max(a.length * 2, n + more)); }
        double[] done() { return n == a.length ? a : Arrays.copyOf(a, n); }
    }

    /** repeated double <-> double[]: packed doubles decoded straight into the array. */
    static final class PackedDoubles extends FieldCodec {
        PackedDoubles(Schema.Field f) { super(f); }

        Object read(Wire.In in, int w, int end, Object state) {
            DoubleAcc acc = (DoubleAcc) state;
            if (w == Wire.LEN) {
                int len = in.length(end);
                if ((len & 7) != 0) throw new Wire.WireException("packed doubles of length " + len + " in field " + f.where());
                int n = len >>> 3;
                if (acc == null) acc = new DoubleAcc(n);
                acc.room(n);
                double[] a = acc.a;
                byte[] b = in.buf;
                int p = in.pos, off = acc.n;
                for (int i = 0; i < n; i++, p += 8) a[off + i] = (double) Wire.LE_DOUBLE.get(b, p);
                acc.n = off + n;
                in.pos = p;
                return acc;
            }
            if (w == Wire.I64) {
                if (acc == null) acc = new DoubleAcc(4);
                double v = in.fixedDouble();
                acc.room(1);
                acc.a[acc.n++] = v;
                return acc;
            }
            in.skip(f.number, w, end);
            return acc;
        }

        Object finish(Object state) { return state == null ? new double[0] : ((DoubleAcc) state).done(); }

        void write(Object v, Wire.Out out) {
            double[] a = (double[]) v;
            if (a == null || a.length == 0) return;
            out.tag(f.number, Wire.LEN);
            out.varint(8L * a.length);
            out.ensure(8 * a.length);
            byte[] b = out.buf;
            int p = out.pos;
            for (double d : a) { Wire.LE_DOUBLE.set(b, p, d); p += 8; }
            out.pos = p;
        }
    }

    /** repeated float <-> float[]. */
    static final class PackedFloats extends FieldCodec {
        PackedFloats(Schema.Field f) { super(f); }

        /** The values read so far (grows by doubling, as {@link DoubleAcc}). */
        static final class Acc {
            float[] a;
            int n;
            Acc(int capacity) { a = new float[Math.max(capacity, 4)]; }
            void room(int more) { if (a.length - n < more) a = Arrays.copyOf(a, Math.max(a.length * 2, n + more)); }
        }

        Object read(Wire.In in, int w, int end, Object state) {
            Acc acc = (Acc) state;
            if (w == Wire.LEN) {
                int len = in.length(end);
                if ((len & 3) != 0) throw new Wire.WireException("packed floats of length " + len + " in field " + f.where());
                int n = len >>> 2;
                if (acc == null) acc = new Acc(n);
                acc.room(n);
                for (int i = 0; i < n; i++) acc.a[acc.n++] = in.fixedFloat();
                return acc;
            }
            if (w == Wire.I32) {
                if (acc == null) acc = new Acc(4);
                float v = in.fixedFloat();
                acc.room(1);
                acc.a[acc.n++] = v;
                return acc;
            }
            in.skip(f.number, w, end);
            return acc;
        }

        Object finish(Object state) {
            if (state == null) return new float[0];
            Acc acc = (Acc) state;
            return acc.n == acc.a.length ? acc.a : Arrays.copyOf(acc.a, acc.n);
        }

        void write(Object v, Wire.Out out) {
            float[] a = (float[]) v;
            if (a == null || a.length == 0) return;
            out.tag(f.number, Wire.LEN);
            out.varint(4L * a.length);
            for (float d : a) out.fixedFloat(d);
        }
    }

    /** repeated int32/uint32 <-> int[] and repeated int64/uint64 <-> long[] (varints). */
    static final class PackedVarints extends FieldCodec {
        final boolean ints;
        PackedVarints(Schema.Field f, boolean ints) { super(f); this.ints = ints; }

        static final class Acc { long[] a = new long[16]; int n; void add(long v) { if (n == a.length) a = Arrays.copyOf(a, n * 2); a[n++] = v; } }

        Object read(Wire.In in, int w, int end, Object state) {
            Acc acc = state == null ? new Acc() : (Acc) state;
            if (w == Wire.LEN) {
                int len = in.length(end);
                int e = in.pos + len;
                while (in.pos < e) acc.add(in.varint64());
                in.expectEnd(e, "packed field " + f.where());
            } else if (w == Wire.VARINT) acc.add(in.varint64());
            else in.skip(f.number, w, end);
            return acc;
        }

        Object finish(Object state) {
            Acc acc = (Acc) state;
            int n = acc == null ? 0 : acc.n;
            if (!ints) return acc == null ? new long[0] : Arrays.copyOf(acc.a, n);
            int[] r = new int[n];
            for (int i = 0; i < n; i++) r[i] = (int) acc.a[i];
            return r;
        }

        void write(Object v, Wire.Out out) {
            if (v == null) return;
            if (ints) {
                int[] a = (int[]) v;
                if (a.length == 0) return;
                boolean unsigned = f.type == Schema.UINT32;
                long size = 0;
                for (int x : a) size += unsigned ? Wire.varintSize(x & 0xFFFFFFFFL) : (x < 0 ? 10 : Wire.varintSize(x));
                out.tag(f.number, Wire.LEN);
                out.varint(size);
                out.ensure((int) size);
                for (int x : a) out.varint(unsigned ? x & 0xFFFFFFFFL : x);
            } else {
                long[] a = (long[]) v;
                if (a.length == 0) return;
                long size = 0;
                for (long x : a) size += Wire.varintSize(x);
                out.tag(f.number, Wire.LEN);
                out.varint(size);
                for (long x : a) out.varint(x);
            }
        }
    }

    /** map<K,V> <-> java.util.Map. */
    static final class MapField extends FieldCodec {
        final ScalarConv key;
        final ScalarConv vsc;
        final MsgCodec vmc;
        final boolean sorted;

        MapField(Schema.Field f, ScalarConv key, ScalarConv vsc, MsgCodec vmc, boolean sorted) {
            super(f); this.key = key; this.vsc = vsc; this.vmc = vmc; this.sorted = sorted;
        }

        @SuppressWarnings("unchecked")
        Object read(Wire.In in, int w, int end, Object state) throws Throwable {
            Map<Object, Object> m = state != null ? (Map<Object, Object>) state : sorted ? new TreeMap<>() : new LinkedHashMap<>();
            if (w != Wire.LEN) { in.skip(f.number, w, end); return m; }
            int len = in.length(end);
            int e = in.pos + len;
            Object k = null, v = null;
            in.enter(); // a map entry is a message of its own
            while (in.pos < e) {
                int tag = in.tag();
                int num = tag >>> 3, wt = tag & 7;
                if (num == 1 && wt == key.wireType()) k = key.read(in, e);
                else if (num == 2 && vsc != null && wt == vsc.wireType()) v = vsc.read(in, e);
                else if (num == 2 && vmc != null && wt == Wire.LEN) {
                    int l2 = in.length(e);
                    int e2 = in.pos + l2;
                    in.enter();
                    v = vmc.read(in, e2);
                    in.leave();
                    in.pos = e2;
                } else in.skip(num, wt, e);
            }
            in.expectEnd(e, "map entry of " + f.where());
            in.leave();
            if (k == null) k = key.defaultValue();
            if (v == null) v = vsc != null ? vsc.defaultValue() : vmc.absent();
            m.put(k, v);
            return m;
        }

        Object finish(Object state) { return state != null ? state : sorted ? new TreeMap<>() : new LinkedHashMap<>(); }

        void write(Object v, Wire.Out out) throws Throwable {
            if (v == null) return;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                out.tag(f.number, Wire.LEN);
                int mark = out.beginLength();
                if (e.getKey() != null) { out.tag(1, key.wireType()); key.writeRaw(e.getKey(), out); }
                Object val = e.getValue();
                if (val != null) {
                    if (vsc != null) { out.tag(2, vsc.wireType()); vsc.writeRaw(val, out); }
                    else {
                        out.tag(2, Wire.LEN);
                        int m2 = out.beginLength();
                        vmc.write(val, out);
                        out.endLength(m2);
                    }
                }
                out.endLength(mark);
            }
        }
    }

    // ------------------------------------------------------------------ messages

    /** A message type bound to a Java type. */
    abstract static class MsgCodec {
        final Schema.Msg msg;
        MsgCodec(Schema.Msg msg) { this.msg = msg; }
        abstract Object read(Wire.In in, int end) throws Throwable;
        abstract void write(Object v, Wire.Out out) throws Throwable;
        /** The Java value of an absent field of this message type. */
        Object absent() { return null; }
    }

    /** Decodes the message's fields into per-field slots (index = position in msg.fields). */
    abstract static class FieldsCodec extends MsgCodec {
        FieldCodec[] fields;
        int[] byNumber = new int[0];
        Map<Integer, Integer> bigNumbers;

        FieldsCodec(Schema.Msg msg) {
            super(msg);
            fields = new FieldCodec[msg.fields.size()];
            int max = 0;
            for (Schema.Field f : msg.fields) max = Math.max(max, f.number);
            if (max < 1024) {
                byNumber = new int[max + 1];
                Arrays.fill(byNumber, -1);
                for (int i = 0; i < msg.fields.size(); i++) byNumber[msg.fields.get(i).number] = i;
            } else {
                bigNumbers = new HashMap<>();
                for (int i = 0; i < msg.fields.size(); i++) bigNumbers.put(msg.fields.get(i).number, i);
            }
        }

        final int index(int number) {
            if (bigNumbers != null) { Integer i = bigNumbers.get(number); return i == null ? -1 : i; }
            return number < byNumber.length ? byNumber[number] : -1;
        }

        final Object[] readSlots(Wire.In in, int end) throws Throwable {
            FieldCodec[] fs = fields;
            Object[] st = new Object[fs.length];
            while (in.pos < end) {
                int tag = in.tag();
                int wt = tag & 7;
                int idx = index(tag >>> 3);
                if (idx < 0 || fs[idx] == null) { in.skip(tag >>> 3, wt, end); continue; }
                st[idx] = fs[idx].read(in, wt, end, st[idx]);
            }
            if (in.pos != end) throw new Wire.WireException("field overruns message " + msg.name);
            for (int i = 0; i < fs.length; i++) if (fs[i] != null) st[i] = fs[i].finish(st[i]);
            return st;
        }
    }

    /** A bean, record or public-field class bound field by field. */
    static final class PojoCodec extends FieldsCodec {
        MethodHandle ctor;          // bean: ()Object; record: (Object[])Object
        boolean record;
        int[] componentOf;          // record: field index -> component index
        Object[] componentDefaults; // record: values of components with no proto field
        MethodHandle[] setters;     // (Object,Object)void
        MethodHandle[] getters;     // (Object)Object

        PojoCodec(Schema.Msg msg) {
            super(msg);
            setters = new MethodHandle[fields.length];
            getters = new MethodHandle[fields.length];
        }

        Object read(Wire.In in, int end) throws Throwable {
            Object[] v = readSlots(in, end);
            if (record) {
                Object[] args = componentDefaults.clone();
                for (int i = 0; i < v.length; i++) if (componentOf[i] >= 0) args[componentOf[i]] = v[i];
                return (Object) ctor.invokeExact(args);
            }
            Object o = (Object) ctor.invokeExact();
            for (int i = 0; i < v.length; i++) if (setters[i] != null) setters[i].invokeExact(o, v[i]);
            return o;
        }

        void write(Object o, Wire.Out out) throws Throwable {
            for (int i = 0; i < fields.length; i++) {
                if (getters[i] == null) continue;
                fields[i].write((Object) getters[i].invokeExact(o), out);
            }
        }
    }

    /** Method parameters bound to the input message's fields: decodes to the argument array. */
    static final class ParamsCodec extends FieldsCodec {
        int[] paramOf;
        Object[] paramDefaults;

        ParamsCodec(Schema.Msg msg) { super(msg); }

        Object read(Wire.In in, int end) throws Throwable {
            Object[] v = readSlots(in, end);
            Object[] args = paramDefaults.clone();
            for (int i = 0; i < v.length; i++) if (paramOf[i] >= 0) args[paramOf[i]] = v[i];
            return args;
        }

        void write(Object v, Wire.Out out) { throw new UnsupportedOperationException("parameters are input only"); }
    }

    /** A message with one field bound to the Java value of that field (e.g. FeatureRow{values} <-> double[]). */
    static final class UnwrapCodec extends MsgCodec {
        FieldCodec fc;
        final int number;

        UnwrapCodec(Schema.Msg msg) { super(msg); this.number = msg.fields.get(0).number; }

        Object read(Wire.In in, int end) throws Throwable {
            Object st = null;
            while (in.pos < end) {
                int tag = in.tag();
                if ((tag >>> 3) == number) st = fc.read(in, tag & 7, end, st);
                else in.skip(tag >>> 3, tag & 7, end);
            }
            in.expectEnd(end, "message " + msg.name);
            return fc.finish(st);
        }

        void write(Object v, Wire.Out out) throws Throwable { fc.write(v, out); }

        Object absent() { return fc.finish(null); }
    }

    /** A message as a {@code LinkedHashMap<String,Object>} by proto field name (Object/Map-typed Java values). */
    static final class GenericCodec extends FieldsCodec {
        GenericCodec(Schema.Msg msg) { super(msg); }

        Object read(Wire.In in, int end) throws Throwable {
            Object[] v = readSlots(in, end);
            Map<String, Object> m = new LinkedHashMap<>();
            for (int i = 0; i < v.length; i++) m.put(msg.fields.get(i).name, v[i]);
            return m;
        }

        void write(Object v, Wire.Out out) throws Throwable {
            if (v instanceof Map) {
                Map<?, ?> m = (Map<?, ?>) v;
                for (int i = 0; i < fields.length; i++) {
                    String n = msg.fields.get(i).name;
                    Object x = m.containsKey(n) ? m.get(n) : m.get(Props.camel(n));
                    fields[i].write(x, out);
                }
            } else {
                for (int i = 0; i < fields.length; i++) fields[i].write(Props.read(v, msg.fields.get(i).name), out);
            }
        }
    }
}
