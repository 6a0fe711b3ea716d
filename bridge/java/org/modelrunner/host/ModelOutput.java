package org.modelrunner.host;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

/**
 * What model code writes to {@code System.out}, {@code System.err} and {@code java.util.logging}, as tagged lines
 * for the serving process's log (bridge/output.py drains them into Python logging, logger {@code model.<name>}).
 *
 * <p>The JVM has one {@code System.out} and one {@code System.err} for every model. {@link #install} replaces
 * them (once per JVM) with streams that attribute each write to the model version whose code runs on the
 * current thread: the thread's context class loader, or one of its parents, is that version's
 * {@link ModelLoader} (the host sets it while model code runs, and threads the model starts inherit it);
 * failing that, the innermost class of a model on the stack (a task on a shared pool). Each complete line of
 * a model (up to {@code \n}) becomes one entry {@code [model=iris version=3 pid=1234] text}; lines are kept
 * apart per thread, so lines of threads printing at once never mix. Writes of code that is no model's pass
 * through to the JVM's original streams, unchanged. SLF4J bindings and Log4j/logback console appenders a
 * model ships in {@code lib/} print through these streams, so their lines are tagged in the same way.
 *
 * <p>A model thread never waits for the log: a line goes into a bounded in-memory queue
 * ({@code -Dmodelrunner.logQueueChars}, 4 MiB by default), and when the log cannot keep up the lines that do
 * not fit are dropped and counted (one entry says how many). The drainer takes what gathered within
 * {@code -Dmodelrunner.logLingerMillis} (5 ms) of the first waiting line in one batch. A line longer than
 * {@code -Dmodelrunner.logLineChars} (16 KiB) is cut into several. Until a line ends it is held (a
 * {@code print} without a newline shows once the line is complete).
 *
 * <p>{@code java.util.logging}: the root logger's handlers are replaced by one that sends a model's records
 * (by the same attribution) with their level and stack trace, and hands every other record to the handlers
 * it replaced. A model that resets the JUL configuration removes it; a console handler made afterwards writes
 * to the tagging {@code System.err}.
 *
 * <p>Nothing here is on the call path: a model that does not print costs nothing.
 */
public final class ModelOutput {
    private ModelOutput() {}

    /** Python logging levels of the entries. */
    static final int DEBUG = 10, INFO = 20, WARNING = 30, ERROR = 40;
    static final int MAX_LINE = Math.max(256, Integer.getInteger("modelrunner.logLineChars", 16 * 1024));
    static final long MAX_QUEUED = Math.max(64 * 1024, Long.getLong("modelrunner.logQueueChars", 4L << 20));
    static final long PID = ProcessHandle.current().pid();
    /** How long the drainer lets a burst of lines gather before taking them (fewer, larger batches). */
    static final long LINGER_MILLIS = Math.max(0, Long.getLong("modelrunner.logLingerMillis", 5L));
    private static final StackWalker WALKER = StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE);

    /** Where the lines of one model version go: a Python logger name and the prefix of every line. */
    public static final class Tag {
        final String logger;
        final String prefix;
        final AtomicLong dropped = new AtomicLong();

        Tag(String logger, String tag) {
            this.logger = logger;
            this.prefix = "[" + tag + " pid=" + PID + "] ";
        }

        @Override public String toString() { return prefix.trim(); }
    }

    /** The tag of a version: logger {@code model.<name>}, lines {@code [model=<name> version=<version> pid=N]}. */
    static Tag tag(String name, String version) {
        String tag = "model=" + name + (version == null || version.isEmpty() ? "" : " version=" + version);
        return new Tag("model." + name, tag);
    }

    private static final class Line {
        final Tag tag;
        final int level;
        final String text;
        final long seq;

        Line(Tag tag, int level, String text, long seq) { this.tag = tag; this.level = level; this.text = text; this.seq = seq; }
    }

    private static final Object LOCK = new Object();
    private static final ArrayDeque<Line> QUEUE = new ArrayDeque<>();
    private static final Set<Tag> DROPS = ConcurrentHashMap.newKeySet();
    private static long queuedChars;
    private static long seq;        // of the last line queued
    private static long taken;      // of the last line handed to drain()
    private static boolean installed;
    private static boolean closed;  // the process is exiting: drain() no longer waits
    private static PrintStream originalOut, originalErr;

    /**
     * Replaces System.out, System.err and the root JUL handlers (idempotent). Call it only with something draining
     * the lines ({@link #drain}): bridge/output.py does both.
     */
    public static synchronized void install() {
        if (installed) return;
        installed = true;
        originalOut = System.out;
        originalErr = System.err;
        Logger root = Logger.getLogger("");
        Handler[] replaced = root.getHandlers();
        for (Handler h : replaced) root.removeHandler(h);
        root.addHandler(new JulHandler(replaced));
        System.setOut(new PrintStream(new LineSink(originalOut, INFO), true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(new LineSink(originalErr, WARNING), true, StandardCharsets.UTF_8));
    }

    /** The model version whose code runs on this thread, or null. */
    static Tag current() {
        ClassLoader l = Thread.currentThread().getContextClassLoader();
        for (int i = 0; l != null && i < 16; i++, l = l.getParent()) {
            if (l instanceof ModelLoader) return ((ModelLoader) l).output();
        }
        // not in a model's context (e.g. a task on ForkJoinPool.commonPool()): a model class on the stack
        Optional<ClassLoader> found = WALKER.walk(s -> s.map(f -> f.getDeclaringClass().getClassLoader())
                .filter(x -> x instanceof ModelLoader).findFirst());
        return found.map(x -> ((ModelLoader) x).output()).orElse(null);
    }

    /** Queues one line (never blocks; dropped and counted when the queue is full). */
    static void emit(Tag tag, int level, String text) {
        String entry = tag.prefix + text;
        synchronized (LOCK) {
            if (queuedChars + entry.length() > MAX_QUEUED) {
                tag.dropped.incrementAndGet();
                DROPS.add(tag);
                return;
            }
            QUEUE.add(new Line(tag, level, entry, ++seq));
            queuedChars += entry.length();
            if (QUEUE.size() == 1) LOCK.notifyAll();   // the drainer waits only on an empty queue
        }
    }

    /** The sequence number of the last line queued (a caller waits until the drainer has logged it). */
    public static long sequence() {
        synchronized (LOCK) { return seq; }
    }

    /**
     * From now on {@link #drain} takes what is queued without waiting, and a drainer waiting in it returns at
     * once: the process is exiting, and the drainer must be out of the JVM before the JVM is destroyed.
     */
    public static void close() {
        synchronized (LOCK) {
            closed = true;
            LOCK.notifyAll();
        }
    }

    /**
     * Waits up to {@code timeoutMillis} for lines and takes them (at most {@code max}), as one string of fields
     * each followed by {@code \0} (see {@link #field}): the sequence number of the last line taken,
     * then logger, level and text of each line, plus one entry per version whose lines were dropped since the
     * last call. One string: the drainer converts one Java string per batch, not three per line.
     */
    public static String drain(long timeoutMillis, int max) throws InterruptedException {
        List<Line> lines = new ArrayList<>();
        List<Tag> drops = new ArrayList<>();
        long last;
        boolean full;
        synchronized (LOCK) {
            long end = System.nanoTime() + Math.max(0, timeoutMillis) * 1_000_000L;
            while (QUEUE.isEmpty() && DROPS.isEmpty() && !closed) {
                long wait = (end - System.nanoTime()) / 1_000_000L;
                if (wait <= 0) return taken + "\0";
                LOCK.wait(wait);
            }
            full = QUEUE.size() >= max;
        }
        if (!full && LINGER_MILLIS > 0) Thread.sleep(LINGER_MILLIS);   // a model printing line after line: one batch
        synchronized (LOCK) {
            while (!QUEUE.isEmpty() && lines.size() < Math.max(1, max)) {
                Line line = QUEUE.poll();
                queuedChars -= line.text.length();
                taken = line.seq;
                lines.add(line);
            }
            drops.addAll(DROPS);
            DROPS.clear();
            last = taken;
        }
        StringBuilder out = new StringBuilder(64 + lines.size() * 96);
        out.append(last).append('\0');
        for (Line line : lines) field(field(field(out, line.tag.logger), Integer.toString(line.level)), line.text);
        for (Tag tag : drops) {
            long n = tag.dropped.getAndSet(0);
            if (n == 0) continue;
            field(field(out, tag.logger), Integer.toString(WARNING));
            field(out, tag.prefix + n + " line" + (n == 1 ? "" : "s") + " of output dropped: the model wrote faster than the log"
                    + " takes them (at most " + MAX_QUEUED + " characters wait)");
        }
        return out.toString();
    }

    /** Appends {@code s} and a NUL; a NUL or a lone surrogate in it (which Python cannot decode) becomes U+FFFD. */
    private static StringBuilder field(StringBuilder sb, String s) {
        int n = s.length(), i = 0;
        while (i < n) {
            char c = s.charAt(i);
            if (c == 0 || Character.isSurrogate(c)) break;
            i++;
        }
        if (i == n) return sb.append(s).append('\0');
        sb.append(s, 0, i);
        for (; i < n; i++) {
            char c = s.charAt(i);
            if (c == 0) sb.append('\uFFFD');
            else if (!Character.isSurrogate(c)) sb.append(c);
            else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) sb.append(c).append(s.charAt(++i));
            else sb.append('\uFFFD');
        }
        return sb.append('\0');
    }

    // ------------------------------------------------------------------ System.out / System.err

    /** The bytes under a PrintStream (which serialises writes): per thread, complete lines of a model are queued. */
    static final class LineSink extends OutputStream {
        private final PrintStream original;
        private final int level;
        private final ThreadLocal<Pending> pending = ThreadLocal.withInitial(Pending::new);

        private static final class Pending extends ByteArrayOutputStream {
            Tag tag;

            Pending() { super(128); }

            /** Emits the whole MAX_LINE-character pieces of this unfinished line; keeps the rest. */
            void cut(LineSink sink, Tag tag) {
                int end = count, lead = end - 1;
                while (lead > 0 && (buf[lead] & 0xC0) == 0x80) lead--;         // the last character's first byte
                int b0 = buf[lead] & 0xFF;
                int need = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 1;
                if (lead + need > end) end = lead;                               // it is not all here yet
                String s = new String(buf, 0, end, StandardCharsets.UTF_8);
                int i = 0;
                for (; s.length() - i > MAX_LINE; i += MAX_LINE) emit(tag, sink.level, s.substring(i, i + MAX_LINE) + " [line continues]");
                byte[] rest = s.substring(i).getBytes(StandardCharsets.UTF_8);
                byte[] tail = java.util.Arrays.copyOfRange(buf, end, count);
                reset();
                buf = new byte[Math.max(128, rest.length + tail.length + 64)];
                write(rest, 0, rest.length);
                write(tail, 0, tail.length);
            }

            String take() {
                int n = count;
                if (n > 0 && buf[n - 1] == '\r') n--;
                String s = new String(buf, 0, n, StandardCharsets.UTF_8);
                reset();
                if (buf.length > 4096) buf = new byte[128];  // a long line once does not keep its buffer
                return s;
            }
        }

        LineSink(PrintStream original, int level) {
            this.original = original;
            this.level = level;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (len <= 0) return;
            Pending p = pending.get();
            Tag tag = current();
            if (p.size() > 0 && p.tag != tag) {
                if (tag == null) tag = p.tag;            // the end of a line a model began
                else emit(p.tag, level, p.take());       // another version: what the last one left is a line
            }
            if (tag == null) {                           // not a model's: as it was
                original.write(b, off, len);
                return;
            }
            p.tag = tag;
            int end = off + len;
            int start = off;
            for (int i = off; i < end; i++) {
                if (b[i] != '\n') continue;
                if (p.size() == 0) {
                    int n = i - start;
                    if (n > 0 && b[i - 1] == '\r') n--;
                    emitLong(tag, new String(b, start, n, StandardCharsets.UTF_8));
                } else {
                    p.write(b, start, i - start);
                    emitLong(tag, p.take());
                }
                start = i + 1;
            }
            if (start < end) {
                p.write(b, start, end - start);
                if (p.size() > MAX_LINE) p.cut(this, tag);
            }
        }

        private void emitLong(Tag tag, String s) {
            int i = 0;
            while (s.length() - i > MAX_LINE) {
                emit(tag, level, s.substring(i, i + MAX_LINE) + " [line continues]");
                i += MAX_LINE;
            }
            emit(tag, level, i == 0 ? s : s.substring(i));
        }

        @Override
        public void flush() {
            // a model's line shows when it ends; everyone else's as before
            if (pending.get().size() == 0) original.flush();
        }
    }

    // ------------------------------------------------------------------ java.util.logging

    /** The root JUL handler: a model's records are queued with their level, the others go where they went. */
    static final class JulHandler extends Handler {
        private final Handler[] replaced;
        private final SimpleFormatter formatter = new SimpleFormatter();

        JulHandler(Handler[] replaced) {
            this.replaced = replaced;
            setLevel(Level.ALL);
        }

        @Override
        public void publish(LogRecord r) {
            if (r == null) return;
            Tag tag = current();
            if (tag == null) {
                for (Handler h : replaced) h.publish(r);
                return;
            }
            String text;
            try {
                text = formatter.formatMessage(r);
            } catch (RuntimeException e) {
                text = String.valueOf(r.getMessage());
            }
            if (r.getLoggerName() != null && !r.getLoggerName().isEmpty()) text = r.getLoggerName() + ": " + text;
            if (r.getThrown() != null) {
                StringWriter sw = new StringWriter();
                r.getThrown().printStackTrace(new PrintWriter(sw));
                String stack = sw.toString();
                text = text + "\n" + (stack.endsWith("\n") ? stack.substring(0, stack.length() - 1) : stack);
            }
            emit(tag, level(r.getLevel()), text);
        }

        static int level(Level l) {
            int v = l == null ? Level.INFO.intValue() : l.intValue();
            if (v >= Level.SEVERE.intValue()) return ERROR;
            if (v >= Level.WARNING.intValue()) return WARNING;
            if (v >= Level.INFO.intValue()) return INFO;
            return DEBUG;
        }

        @Override
        public void flush() {
            for (Handler h : replaced) h.flush();
        }

        @Override
        public void close() {
            for (Handler h : replaced) h.close();
        }
    }
}
