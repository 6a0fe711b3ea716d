package org.modelrunner.host;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** Protocol-buffers wire format: a reader over a byte range and a growable writer. */
final class Wire {
    private Wire() {}

    static final int VARINT = 0, I64 = 1, LEN = 2, SGROUP = 3, EGROUP = 4, I32 = 5;
    static final VarHandle LE_DOUBLE = MethodHandles.byteArrayViewVarHandle(double[].class, ByteOrder.LITTLE_ENDIAN);
    static final VarHandle LE_FLOAT = MethodHandles.byteArrayViewVarHandle(float[].class, ByteOrder.LITTLE_ENDIAN);
    static final VarHandle LE_LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    static final VarHandle LE_INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

    /**
     * Reads protobuf wire data from {@code buf}; {@code pos} advances. The bytes are untrusted (a caller's
     * request): every malformed input is a {@link WireException} (the host answers it as an input error,
     * Python as BadInput), refused where Python's protobuf (upb) refuses it: tags and lengths of more than
     * 5 bytes or 32 bits, field number 0, wire types 6 and 7, an end of group that does not match its
     * start, strings that are not UTF-8, lengths beyond the enclosing message, and messages and groups
     * nested deeper than {@link #MAX_DEPTH} levels (so no input can overflow the stack).
     */
    static final class In {
        /** Deepest nesting of sub-messages (map entries included) and groups: upb's default limit. */
        static final int MAX_DEPTH = 100;

        final byte[] buf;
        int pos;
        /** Sub-messages and groups entered and not yet left ({@link #enter}, {@link #leave}). */
        int depth;

        In(byte[] buf) { this.buf = buf; }

        long varint64() {
            long result = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= buf.length) throw new WireException("truncated varint");
                byte b = buf[pos++];
                result |= (long) (b & 0x7F) << shift;
                if ((b & 0x80) == 0) return result;
            }
            throw new WireException("malformed varint (more than 10 bytes)");
        }

        /** An unsigned varint of at most 5 bytes whose value fits in 32 bits: how tags and lengths are read. */
        private long varint32(String what) {
            long result = 0;
            for (int shift = 0; shift < 35; shift += 7) {
                if (pos >= buf.length) throw new WireException("truncated " + what);
                byte b = buf[pos++];
                result |= (long) (b & 0x7F) << shift;
                if ((b & 0x80) == 0) {
                    if (result > 0xFFFFFFFFL) throw new WireException(what + " beyond 32 bits");
                    return result;
                }
            }
            throw new WireException("malformed " + what + " (more than 5 bytes)");
        }

        /** A field's tag (number << 3 | wire type): field number 0 and wire types 6 and 7 are refused. */
        int tag() {
            int t;
            if (pos < buf.length && buf[pos] >= 0) t = buf[pos++]; // one byte: fields 1 to 15
            else t = (int) varint32("tag");
            if ((t >>> 3) == 0) throw new WireException("field number 0 (tag " + Integer.toUnsignedString(t) + ")");
            if ((t & 7) > I32) throw new WireException("bad wire type " + (t & 7));
            return t;
        }

        /** A length prefix, refused when it reaches beyond {@code end} (the end of the enclosing message). */
        int length(int end) {
            long len;
            if (pos < buf.length && buf[pos] >= 0) len = buf[pos++];
            else len = varint32("length");
            if (len > end - pos) throw new WireException("length " + len + " beyond end of message");
            return (int) len;
        }

        /** One level deeper (a sub-message, a map entry or a group); refused beyond {@link #MAX_DEPTH}. */
        void enter() {
            if (++depth > MAX_DEPTH) throw new WireException("messages nested deeper than " + MAX_DEPTH + " levels");
        }

        void leave() { depth--; }

        /** Refuses a value that ran past the end of its length-delimited range (a field or packed run). */
        void expectEnd(int end, String what) {
            if (pos != end) throw new WireException(what + " overruns its length");
        }

        double fixedDouble() { check(8); double v = (double) LE_DOUBLE.get(buf, pos); pos += 8; return v; }
        float fixedFloat() { check(4); float v = (float) LE_FLOAT.get(buf, pos); pos += 4; return v; }
        long fixed64() { check(8); long v = (long) LE_LONG.get(buf, pos); pos += 8; return v; }
        int fixed32() { check(4); int v = (int) LE_INT.get(buf, pos); pos += 4; return v; }

        private void check(int n) { if (n > buf.length - pos) throw new WireException("truncated fixed value"); }

        /** Skips the value of field {@code number} sent with wire type {@code wireType} (an unknown field). */
        void skip(int number, int wireType, int end) {
            switch (wireType) {
                case VARINT: varint64(); break;
                case I64: check(8); pos += 8; break;
                case I32: check(4); pos += 4; break;
                case LEN: { int len = length(end); pos += len; break; }
                case SGROUP: skipGroup(number, end); break;
                case EGROUP: throw new WireException("end of group " + number + " without its start");
                default: throw new WireException("bad wire type " + wireType);
            }
        }

        private void skipGroup(int number, int end) {
            enter();
            while (true) {
                if (pos >= end) throw new WireException("unterminated group " + number);
                int tag = tag();
                if ((tag & 7) == EGROUP) {
                    if ((tag >>> 3) != number) {
                        throw new WireException("group " + number + " closed by the end of group " + (tag >>> 3));
                    }
                    break;
                }
                skip(tag >>> 3, tag & 7, end);
            }
            leave();
        }

        /** A UTF-8 string; {@link BadUtf8} when the bytes are not well-formed UTF-8 (as proto3 requires). */
        String string(int end) {
            int len = length(end);
            int p = pos, e = p + len, i = p;
            while (i < e && buf[i] >= 0) i++; // ASCII: the common case
            if (i < e) checkUtf8(buf, i, e);
            String s = new String(buf, p, len, StandardCharsets.UTF_8);
            pos = e;
            return s;
        }

        byte[] bytes(int end) {
            int len = length(end);
            byte[] b = Arrays.copyOfRange(buf, pos, pos + len);
            pos += len;
            return b;
        }
    }

    /**
     * Refuses bytes {@code b[i..e)} unless they are well-formed UTF-8 (Unicode's table 3-7: no overlong forms,
     * no surrogates, nothing above U+10FFFF, no truncated sequence).
     */
    static void checkUtf8(byte[] b, int i, int e) {
        while (i < e) {
            int c = b[i] & 0xFF;
            if (c < 0x80) { i++; continue; }
            int more, lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) more = 1;
            else if (c == 0xE0) { more = 2; lo = 0xA0; }
            else if (c == 0xED) { more = 2; hi = 0x9F; }
            else if (c >= 0xE1 && c <= 0xEF) more = 2;
            else if (c == 0xF0) { more = 3; lo = 0x90; }
            else if (c >= 0xF1 && c <= 0xF3) more = 3;
            else if (c == 0xF4) { more = 3; hi = 0x8F; }
            else throw new BadUtf8(i);
            if (e - i <= more) throw new BadUtf8(i);
            int c1 = b[i + 1] & 0xFF;
            if (c1 < lo || c1 > hi) throw new BadUtf8(i);
            for (int k = 2; k <= more; k++) {
                int ck = b[i + k] & 0xFF;
                if (ck < 0x80 || ck > 0xBF) throw new BadUtf8(i);
            }
            i += more + 1;
        }
    }

    /** A growable output buffer. */
    static final class Out {
        byte[] buf;
        int pos;

        Out(int capacity) { buf = new byte[Math.max(capacity, 16)]; }

        void ensure(int n) {
            if (pos + n > buf.length) buf = Arrays.copyOf(buf, Math.max(buf.length * 2, pos + n));
        }

        byte[] toByteArray() { return Arrays.copyOf(buf, pos); }

        void varint(long v) {
            ensure(10);
            while ((v & ~0x7FL) != 0) {
                buf[pos++] = (byte) ((v & 0x7F) | 0x80);
                v >>>= 7;
            }
            buf[pos++] = (byte) v;
        }

        void tag(int number, int wireType) { varint(((long) number << 3) | wireType); }

        void fixedDouble(double v) { ensure(8); LE_DOUBLE.set(buf, pos, v); pos += 8; }
        void fixedFloat(float v) { ensure(4); LE_FLOAT.set(buf, pos, v); pos += 4; }
        void fixed64(long v) { ensure(8); LE_LONG.set(buf, pos, v); pos += 8; }
        void fixed32(int v) { ensure(4); LE_INT.set(buf, pos, v); pos += 4; }

        void bytes(byte[] b) {
            varint(b.length);
            ensure(b.length);
            System.arraycopy(b, 0, buf, pos, b.length);
            pos += b.length;
        }

        /** Reserves one byte for a length prefix; returns the mark for {@link #endLength}. */
        int beginLength() { ensure(1); return pos++; }

        /** Writes the length of everything after {@code mark}, shifting the content when it needs more than one byte. */
        void endLength(int mark) {
            int len = pos - mark - 1;
            int size = varintSize(len);
            if (size > 1) {
                ensure(size - 1);
                System.arraycopy(buf, mark + 1, buf, mark + size, len);
                pos += size - 1;
            }
            int p = mark;
            long v = len;
            while ((v & ~0x7FL) != 0) {
                buf[p++] = (byte) ((v & 0x7F) | 0x80);
                v >>>= 7;
            }
            buf[p] = (byte) v;
        }
    }

    static int varintSize(long v) {
        int n = 1;
        while ((v & ~0x7FL) != 0) { n++; v >>>= 7; }
        return n;
    }

    static class WireException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        WireException(String m) { super("malformed protobuf input: " + m); }
    }

    /** A string that is not UTF-8; {@code offset}: the first bad byte in the request. */
    static final class BadUtf8 extends WireException {
        private static final long serialVersionUID = 1L;
        final int offset;
        BadUtf8(int offset) { super("a string is not valid UTF-8 (byte " + offset + ")"); this.offset = offset; }
    }
}
