package org.modelrunner.host;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Tests of the host's wire reader (Wire.In) and of the repeated-field codecs, on their own: no model, no
 * Python. Each {@code static void test...()} method is one test; {@code main} runs the ones named on the
 * command line (all when none), prints "ok NAME" or "FAIL NAME: why" per test, and exits 1 on a failure.
 * tests/bridge/test_wire_java.py compiles this file against the host classes and runs it.
 */
public final class WireTests {
    private WireTests() {}

    // ------------------------------------------------------------------ helpers

    static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) b[i] = (byte) v[i];
        return b;
    }

    static byte[] varint(long v) {
        Wire.Out o = new Wire.Out(10);
        o.varint(v);
        return o.toByteArray();
    }

    static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) n += p.length;
        byte[] out = new byte[n];
        int i = 0;
        for (byte[] p : parts) { System.arraycopy(p, 0, out, i, p.length); i += p.length; }
        return out;
    }

    static byte[] repeat(byte[] b, int times) {
        byte[] out = new byte[b.length * times];
        for (int i = 0; i < times; i++) System.arraycopy(b, 0, out, i * b.length, b.length);
        return out;
    }

    interface Body { void run(Wire.In in); }

    /** Runs {@code body} over {@code input} and returns the WireException it must throw. */
    static Wire.WireException refused(byte[] input, Body body) {
        Wire.In in = new Wire.In(input);
        try {
            body.run(in);
        } catch (Wire.WireException e) {
            return e;
        }
        throw new AssertionError("accepted " + hex(input));
    }

    static void accepted(byte[] input, Body body) {
        Wire.In in = new Wire.In(input);
        body.run(in);
        check(in.pos == input.length, "read " + in.pos + " of " + input.length + " bytes of " + hex(input));
    }

    static void check(boolean ok, String what) { if (!ok) throw new AssertionError(what); }

    static void contains(Throwable e, String text) {
        check(String.valueOf(e.getMessage()).contains(text), "'" + e.getMessage() + "' does not say '" + text + "'");
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(b.length, 40); i++) sb.append(String.format("%02x", b[i] & 0xFF));
        return b.length > 40 ? sb + "..." : sb.toString();
    }

    static Schema.Field field(int number, int type) {
        Schema.Msg owner = new Schema.Msg("test.M", false);
        Schema.Field f = new Schema.Field(owner, "values", number, type, true, false, "-");
        owner.fields.add(f);
        return f;
    }

    /** Reads every field of {@code input} into {@code codec} (one repeated field, number 1), as a message would. */
    static Object readAll(Codecs.FieldCodec codec, byte[] input) throws Throwable {
        Wire.In in = new Wire.In(input);
        Object state = null;
        while (in.pos < input.length) {
            int tag = in.tag();
            state = codec.read(in, tag & 7, input.length, state);
        }
        return codec.finish(state);
    }

    static final Body TAG = in -> in.tag();
    static final Body SKIP_FIELD = in -> { int t = in.tag(); in.skip(t >>> 3, t & 7, in.buf.length); };

    // ------------------------------------------------------------------ tags

    static void testTagZeroIsRefused() {
        contains(refused(bytes(0x00), TAG), "field number 0");
        contains(refused(bytes(0x02), TAG), "field number 0");
        contains(refused(bytes(0x80, 0x00), TAG), "field number 0"); // overlong 0
        contains(refused(bytes(0x87, 0x80, 0x80, 0x80, 0x00), TAG), "field number 0");
    }

    static void testWireTypesSixAndSevenAreRefused() {
        contains(refused(bytes(0x0e), TAG), "wire type 6");
        contains(refused(bytes(0x0f), TAG), "wire type 7");
        contains(refused(bytes(0xfe, 0xff, 0xff, 0xff, 0x0f), TAG), "wire type 6");
    }

    static void testTagsHaveAtMostFiveBytesAndThirtyTwoBits() {
        accepted(bytes(0x08), TAG);
        accepted(bytes(0x88, 0x80, 0x80, 0x80, 0x00), TAG);          // overlong, 5 bytes
        accepted(bytes(0xf8, 0xff, 0xff, 0xff, 0x0f), TAG);          // field 2^29-1
        contains(refused(bytes(0x88, 0x80, 0x80, 0x80, 0x80, 0x00), TAG), "more than 5 bytes");
        contains(refused(bytes(0x88, 0x80, 0x80, 0x80, 0x10), TAG), "beyond 32 bits");
        contains(refused(bytes(0x88, 0x80), TAG), "truncated tag");
        Wire.In in = new Wire.In(bytes(0xf8, 0xff, 0xff, 0xff, 0x0f));
        int t = in.tag();
        check((t >>> 3) == (1 << 29) - 1 && (t & 7) == 0, "field number of the largest tag: " + (t >>> 3));
    }

    // ------------------------------------------------------------------ lengths and values

    static void testLengthsStayWithinTheMessage() {
        accepted(bytes(0x0a, 0x02, 0x61, 0x62), SKIP_FIELD);
        accepted(bytes(0x0a, 0x82, 0x80, 0x80, 0x80, 0x00, 0x61, 0x62), SKIP_FIELD); // 5-byte length
        contains(refused(bytes(0x0a, 0x03, 0x61, 0x62), SKIP_FIELD), "beyond end of message");
        // 2^32 + 1 truncated to an int would be 1: refused as a whole
        contains(refused(bytes(0x0a, 0x81, 0x80, 0x80, 0x80, 0x10, 0x61), SKIP_FIELD), "beyond 32 bits");
        contains(refused(bytes(0x0a, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x61), SKIP_FIELD), "more than 5 bytes");
        contains(refused(bytes(0x0a, 0xff, 0xff, 0xff, 0xff, 0x07), SKIP_FIELD), "beyond end of message");
        // within a sub-range: the end given, not the buffer's
        Wire.In in = new Wire.In(bytes(0x03, 0x61, 0x62, 0x63, 0x64));
        try { in.length(3); throw new AssertionError("length beyond the range accepted"); }
        catch (Wire.WireException e) { contains(e, "beyond end of message"); }
    }

    static void testVarintsHaveAtMostTenBytes() {
        accepted(concat(bytes(0x08), repeat(bytes(0xff), 9), bytes(0x7f)), SKIP_FIELD);
        contains(refused(concat(bytes(0x08), repeat(bytes(0xff), 10), bytes(0x01)), SKIP_FIELD), "more than 10 bytes");
        contains(refused(bytes(0x08, 0x80), SKIP_FIELD), "truncated varint");
        contains(refused(bytes(0x09, 0, 0, 0), SKIP_FIELD), "truncated fixed value");
        contains(refused(bytes(0x0d, 0, 0), SKIP_FIELD), "truncated fixed value");
    }

    // ------------------------------------------------------------------ groups

    static byte[] groups(int depth, int number) {
        return concat(repeat(varint(number << 3 | 3), depth), repeat(varint(number << 3 | 4), depth));
    }

    static void testGroupsNestUpToTheLimit() {
        accepted(groups(1, 9), SKIP_FIELD);
        accepted(groups(Wire.In.MAX_DEPTH, 9), SKIP_FIELD);
        contains(refused(groups(Wire.In.MAX_DEPTH + 1, 9), SKIP_FIELD), "nested deeper than 100");
    }

    static void testDeepGroupsAreRefusedWithoutOverflowingTheStack() {
        // before the limit, skipping recursed once per group: a StackOverflowError, answered as a model error
        byte[] deep = groups(1_000_000, 9);
        long t0 = System.nanoTime();
        contains(refused(deep, SKIP_FIELD), "nested deeper than 100");
        check(System.nanoTime() - t0 < 1_000_000_000L, "refusing took more than a second");
    }

    static void testGroupEndsMustMatchTheirStart() {
        contains(refused(bytes(0x4b, 0x54), SKIP_FIELD), "closed by the end of group 10");
        contains(refused(bytes(0x4b, 0x53, 0x4c, 0x54), SKIP_FIELD), "closed by the end of group 9");
        contains(refused(bytes(0x4c), SKIP_FIELD), "end of group 9 without its start");
        contains(refused(bytes(0x4b, 0x08, 0x01), SKIP_FIELD), "unterminated group 9");
        contains(refused(bytes(0x4b, 0x00, 0x4c), SKIP_FIELD), "field number 0");
        accepted(bytes(0x4b, 0x08, 0x01, 0x12, 0x01, 0x61, 0x4c), SKIP_FIELD);
    }

    static void testDepthCountsEveryLevelAndIsLeftBalanced() {
        Wire.In in = new Wire.In(new byte[0]);
        for (int i = 0; i < Wire.In.MAX_DEPTH; i++) in.enter();
        try { in.enter(); throw new AssertionError("level 101 accepted"); }
        catch (Wire.WireException e) { contains(e, "nested deeper than 100"); }
        // levels are left again: groups one after another never add up
        byte[] twice = concat(groups(Wire.In.MAX_DEPTH, 9), groups(Wire.In.MAX_DEPTH, 10));
        Wire.In seq = new Wire.In(twice);
        while (seq.pos < twice.length) SKIP_FIELD.run(seq);
        check(seq.depth == 0, "depth after the groups: " + seq.depth);
    }

    // ------------------------------------------------------------------ strings

    static boolean strictUtf8(byte[] b) {
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    static boolean hostUtf8(byte[] b) {
        try {
            Wire.checkUtf8(b, 0, b.length);
            return true;
        } catch (Wire.BadUtf8 e) {
            return false;
        }
    }

    static void testUtf8ExamplesFromTheStandard() {
        String[] good = {"", "a", "é", "€", "𝄞", "\u0000", "\uffff", "\ud7ff", "\ue000", new String(Character.toChars(0x10FFFF))};
        for (String s : good) check(hostUtf8(s.getBytes(StandardCharsets.UTF_8)), "refused " + s);
        int[][] bad = {
            {0x80}, {0xbf}, {0xc0, 0xaf}, {0xc1, 0xbf}, {0xc3}, {0xc3, 0x28}, {0xe0, 0x80, 0xaf}, {0xe0, 0x9f, 0xbf},
            {0xed, 0xa0, 0x80}, {0xed, 0xbf, 0xbf}, {0xe2, 0x82}, {0xf0, 0x80, 0x80, 0xaf}, {0xf0, 0x8f, 0xbf, 0xbf},
            {0xf4, 0x90, 0x80, 0x80}, {0xf5, 0x80, 0x80, 0x80}, {0xf8, 0x88, 0x80, 0x80, 0x80}, {0xfe}, {0xff},
            {0x61, 0xe2, 0x82}, {0xe2, 0x28, 0xa1},
        };
        for (int[] b : bad) check(!hostUtf8(bytes(b)), "accepted " + hex(bytes(b)));
    }

    static void testUtf8AgreesWithTheStrictDecoderOnRandomBytes() {
        Random r = new Random(Long.getLong("seed", 12345L));
        byte[] alphabet = bytes(0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
                0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff);
        for (int i = 0; i < 200_000; i++) {
            byte[] b = new byte[r.nextInt(7)];
            for (int j = 0; j < b.length; j++) b[j] = r.nextBoolean() ? alphabet[r.nextInt(alphabet.length)] : (byte) r.nextInt(256);
            check(hostUtf8(b) == strictUtf8(b), "disagrees with the JDK's strict decoder on " + hex(b) + " (seed " + Long.getLong("seed", 12345L) + ")");
        }
    }

    static void testStringsAreCheckedAndDecoded() {
        Wire.In in = new Wire.In(concat(bytes(0x05), "héé".getBytes(StandardCharsets.UTF_8)));
        check(in.string(in.buf.length).equals("héé"), "decoded");
        Wire.BadUtf8 e = (Wire.BadUtf8) refused(bytes(0x03, 0x61, 0xc3, 0x28), in2 -> in2.string(in2.buf.length));
        check(e.offset == 2, "offset of the bad byte: " + e.offset);
    }

    // ------------------------------------------------------------------ repeated fields

    static byte[] unpackedDoubles(int n) {
        byte[] out = new byte[n * 9];
        for (int i = 0; i < n; i++) {
            out[i * 9] = 0x09; // field 1, I64
            Wire.LE_DOUBLE.set(out, i * 9 + 1, (double) i);
        }
        return out;
    }

    static void testUnpackedDoublesDecodeInLinearTime() throws Throwable {
        int n = 1_000_000; // a copy per value: 4e12 bytes copied; the doubling buffer: ~16e6
        byte[] input = unpackedDoubles(n);
        long t0 = System.nanoTime();
        double[] a = (double[]) readAll(new Codecs.PackedDoubles(field(1, Schema.DOUBLE)), input);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        check(a.length == n && a[0] == 0 && a[n - 1] == n - 1, "values");
        check(ms < 3000, n + " unpacked doubles took " + ms + " ms");
    }

    static void testUnpackedFloatsDecodeInLinearTime() throws Throwable {
        int n = 1_000_000;
        byte[] input = new byte[n * 5];
        for (int i = 0; i < n; i++) { input[i * 5] = 0x0d; Wire.LE_FLOAT.set(input, i * 5 + 1, (float) i); }
        long t0 = System.nanoTime();
        float[] a = (float[]) readAll(new Codecs.PackedFloats(field(1, Schema.FLOAT)), input);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        check(a.length == n && a[n - 1] == n - 1, "values");
        check(ms < 3000, n + " unpacked floats took " + ms + " ms");
    }

    static void testPackedAndUnpackedRunsMixInOrder() throws Throwable {
        Wire.Out o = new Wire.Out(64);
        o.tag(1, Wire.I64); o.fixedDouble(1);
        o.tag(1, Wire.LEN); o.varint(16); o.fixedDouble(2); o.fixedDouble(3);
        o.tag(1, Wire.I64); o.fixedDouble(4);
        o.tag(1, Wire.LEN); o.varint(0);
        o.tag(1, Wire.LEN); o.varint(8); o.fixedDouble(5);
        double[] a = (double[]) readAll(new Codecs.PackedDoubles(field(1, Schema.DOUBLE)), o.toByteArray());
        check(Arrays.equals(a, new double[] {1, 2, 3, 4, 5}), Arrays.toString(a));
        check(((double[]) readAll(new Codecs.PackedDoubles(field(1, Schema.DOUBLE)), new byte[0])).length == 0, "empty");
    }

    static void testPackedRunsOfTheWrongSizeAreRefused() {
        Codecs.PackedDoubles d = new Codecs.PackedDoubles(field(1, Schema.DOUBLE));
        Codecs.PackedFloats f = new Codecs.PackedFloats(field(1, Schema.FLOAT));
        Codecs.PackedVarints v = new Codecs.PackedVarints(field(1, Schema.INT32), true);
        for (Object[] c : new Object[][] {
                {d, concat(bytes(0x0a, 0x0c), new byte[12]), "packed doubles of length 12"},
                {f, concat(bytes(0x0a, 0x06), new byte[6]), "packed floats of length 6"},
                {v, bytes(0x0a, 0x02, 0x01, 0x80, 0x01), "overruns its length"},
        }) {
            try {
                readAll((Codecs.FieldCodec) c[0], (byte[]) c[1]);
                throw new AssertionError("accepted " + hex((byte[]) c[1]));
            } catch (Wire.WireException e) {
                contains(e, (String) c[2]);
            } catch (Throwable e) {
                throw new AssertionError(e);
            }
        }
    }

    // ------------------------------------------------------------------ runner

    public static void main(String[] args) throws Exception {
        List<Method> tests = new ArrayList<>();
        for (Method m : WireTests.class.getDeclaredMethods())
            if (m.getName().startsWith("test") && Modifier.isStatic(m.getModifiers()) && m.getParameterCount() == 0)
                if (args.length == 0 || Arrays.asList(args).contains(m.getName())) tests.add(m);
        tests.sort((a, b) -> a.getName().compareTo(b.getName()));
        int failed = 0;
        for (Method m : tests) {
            try {
                m.invoke(null);
                System.out.println("ok " + m.getName());
            } catch (InvocationTargetException e) {
                failed++;
                Throwable c = e.getCause();
                System.out.println("FAIL " + m.getName() + ": " + c);
                c.printStackTrace(System.out);
            }
        }
        System.out.println(tests.size() - failed + " passed, " + failed + " failed");
        System.exit(failed == 0 && !tests.isEmpty() ? 0 : 1);
    }
}
