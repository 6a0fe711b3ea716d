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

    /** Reads protobuf wire data from {@code buf}; {@code pos} advances. */
    static final class In {
        final byte[] buf;
        int pos;

        In(byte[] buf) { this.buf = buf; }

        long varint64() {
            long result = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= buf.length) throw new WireException("truncated varint");
                byte b = buf[pos++];
                result |= (long) (b & 0x7F) << shift;
                if ((b & 0x80) == 0) return result;
            }
            throw new WireException("malformed varint");
        }

        int varint32() {
            // Fast path for one-byte values (tags, small lengths).
            if (pos < buf.length) {
                byte b = buf[pos];
                if (b >= 0) { pos++; return b; }
            }
            return (int) varint64();
        }

        int length(int end) {
            int len = varint32();
            if (len < 0 || len > end - pos) throw new WireException("length " + len + " beyond end of message");
            return len;
        }

        double fixedDouble() { check(8); double v = (double) LE_DOUBLE.get(buf, pos); pos += 8; return v; }
        float fixedFloat() { check(4); float v = (float) LE_FLOAT.get(buf, pos); pos += 4; return v; }
        long fixed64() { check(8); long v = (long) LE_LONG.get(buf, pos); pos += 8; return v; }
        int fixed32() { check(4); int v = (int) LE_INT.get(buf, pos); pos += 4; return v; }

        private void check(int n) { if (pos + n > buf.length) throw new WireException("truncated fixed value"); }

        void skip(int wireType, int end) {
            switch (wireType) {
                case VARINT: varint64(); break;
                case I64: check(8); pos += 8; break;
                case I32: check(4); pos += 4; break;
                case LEN: { int len = length(end); pos += len; break; }
                case SGROUP: {
                    while (true) {
                        if (pos >= end) throw new WireException("unterminated group");
                        int tag = varint32();
                        if ((tag & 7) == EGROUP) break;
                        skip(tag & 7, end);
                    }
                    break;
                }
                default: throw new WireException("bad wire type " + wireType);
            }
        }

        String string(int end) {
            int len = length(end);
            String s = new String(buf, pos, len, StandardCharsets.UTF_8);
            pos += len;
            return s;
        }

        byte[] bytes(int end) {
            int len = length(end);
            byte[] b = Arrays.copyOfRange(buf, pos, pos + len);
            pos += len;
            return b;
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

    static final class WireException extends RuntimeException {
        WireException(String m) { super("malformed protobuf input: " + m); }
    }
}
