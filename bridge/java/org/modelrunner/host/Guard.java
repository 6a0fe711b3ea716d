package org.modelrunner.host;

import java.security.Permission;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Protection of the serving process from its models: an exit guard (a permissive SecurityManager whose only
 * check is that no model class is on the stack of System.exit / Runtime.halt) and a watchdog that stops
 * calls past their deadline: interrupt first, then Thread.stop after a grace period (repeated while the
 * call keeps running; on a JDK without Thread.stop, and for calls run inline on their caller's thread, interrupts
 * only). A timed call runs on a host call thread
 * (Calls) and its caller is answered at the deadline whatever the model does; an untimed call runs on the
 * caller's own thread and costs nothing extra. The watchdog thread never runs model code (so it needs no model
 * context class loader, and holds none).
 *
 * <p>A call still running {@code -Dmodelrunner.stuckGraceMillis} (2000 ms) after its deadline is stuck: it is
 * listed by {@link #stuckJson} (model, version, rpc, method, thread, how overdue, its current stack) until its
 * thread leaves the model code, and counted for good, as are calls whose caller was answered at the deadline
 * while the model still ran (abandoned).
 */
final class Guard {
    private Guard() {}

    static final int IDLE = 0, RUNNING = 1, INTERRUPTED = 2, STOPPED = 3;
    static final long GRACE_NANOS = Long.getLong("modelrunner.stopGraceMillis", 200L) * 1_000_000L;
    static final long STUCK_GRACE_NANOS = Math.max(0L, Long.getLong("modelrunner.stuckGraceMillis", 2000L)) * 1_000_000L;
    private static final int MAX_STUCK_STACK = 16 * 1024;

    /** Calls whose caller got the deadline error while the model still ran; calls ever declared stuck. */
    static final LongAdder ABANDONED = new LongAdder(), STUCK_TOTAL = new LongAdder();
    /** Calls running past their deadline + the stuck grace, until their thread leaves the model code. */
    static final Set<Control> STUCK = ConcurrentHashMap.newKeySet();

    static volatile boolean exitGuard;
    static volatile String exitGuardError = "";

    /** Thrown into a model that calls System.exit or Runtime.halt. */
    static final class ExitTrapped extends SecurityException {
        private static final long serialVersionUID = 1L;
        final int status;
        ExitTrapped(int status) { super("model called System.exit/Runtime.halt(" + status + "); blocked by model-runner"); this.status = status; }
    }

    /** Per-thread call state, read by the watchdog. */
    static final class Control {
        final Thread thread;
        int state;
        long deadline, mark;
        boolean timedOut, registered;
        /** An inline call (Slot.setInlineCalls) on its caller's thread: never Thread.stop, which could land later. */
        boolean interruptOnly;
        volatile boolean exitAttempted;
        volatile int exitStatus;
        // what runs, for the stuck list (guarded by this)
        String model = "", version = "", rpc = "", javaMethod = "";
        boolean stuck;
        long stuckSinceWallMillis;   // when the deadline passed, wall clock

        Control(Thread t) { thread = t; }

        /** Begins a timed call ending at {@code deadlineNanos} (System.nanoTime); the strings name it if it gets stuck. */
        void begin(long deadlineNanos, String model, String version, String rpc, String javaMethod, boolean interruptOnly) {
            synchronized (this) {
                deadline = deadlineNanos;
                this.interruptOnly = interruptOnly;
                timedOut = false;
                state = RUNNING;
                this.model = model; this.version = version; this.rpc = rpc; this.javaMethod = javaMethod;
            }
            if (!registered) { registered = true; TIMED.add(this); startWatchdog(); }
        }

        /** Ends a timed call; true when the watchdog interrupted or stopped it. Idempotent. */
        boolean end() {
            boolean t, wasStuck;
            synchronized (this) {
                if (state != IDLE) { timedOut = state >= INTERRUPTED; state = IDLE; }
                t = timedOut;
                wasStuck = stuck;
                stuck = false;
            }
            if (wasStuck) STUCK.remove(this);
            if (t) Thread.interrupted(); // clear the interrupt we sent
            return t;
        }
    }

    static final ThreadLocal<Control> CONTROL = ThreadLocal.withInitial(() -> new Control(Thread.currentThread()));
    static final Set<Control> TIMED = ConcurrentHashMap.newKeySet();
    private static Thread watchdog;

    static synchronized void startWatchdog() {
        if (watchdog != null) return;
        watchdog = new Thread(Guard::watch, "model-runner-watchdog");
        // Started from inside a call, it would inherit that model's context loader and pin it for good.
        watchdog.setContextClassLoader(Guard.class.getClassLoader());
        watchdog.setDaemon(true);
        watchdog.start();
    }

    @SuppressWarnings({"deprecation", "removal"})
    private static void watch() {
        while (true) {
            try { Thread.sleep(5); } catch (InterruptedException e) { return; }
            long now = System.nanoTime();
            for (Control c : TIMED) {
                if (!c.thread.isAlive()) { TIMED.remove(c); STUCK.remove(c); continue; }
                synchronized (c) {
                    if (c.state == RUNNING && now - c.deadline >= 0) {
                        c.state = INTERRUPTED;
                        c.mark = now;
                        c.thread.interrupt();
                    } else if (c.state >= INTERRUPTED && now - c.mark >= GRACE_NANOS) {
                        c.state = STOPPED;
                        c.mark = now;
                        c.thread.interrupt();
                        if (!c.interruptOnly) {
                            try { c.thread.stop(); } catch (Throwable e) { /* JDK without Thread.stop: interrupt only */ }
                        }
                    }
                    if (c.state >= INTERRUPTED && !c.stuck && now - c.deadline >= STUCK_GRACE_NANOS) {
                        c.stuck = true;
                        c.stuckSinceWallMillis = System.currentTimeMillis() - (now - c.deadline) / 1_000_000L;
                        STUCK.add(c);
                        STUCK_TOTAL.increment();
                    }
                }
            }
        }
    }

    /**
     * JSON list of the stuck calls: {"model", "version", "rpc", "java_method", "thread", "overdue_seconds",
     * "deadline_at" (epoch seconds), "stack" (the thread's current stack as text)}.
     */
    static String stuckJson() {
        List<Map<String, Object>> out = new ArrayList<>();
        long now = System.nanoTime();
        for (Control c : STUCK) {
            Map<String, Object> m = new LinkedHashMap<>();
            synchronized (c) {
                if (!c.stuck) continue;
                m.put("model", c.model);
                m.put("version", c.version);
                m.put("rpc", c.rpc);
                m.put("java_method", c.javaMethod);
                m.put("thread", c.thread.getName());
                m.put("overdue_seconds", (now - c.deadline) / 1e9);
                m.put("deadline_at", c.stuckSinceWallMillis / 1e3);
            }
            m.put("stack", stackText(c.thread.getStackTrace()));
            out.add(m);
        }
        return Json.write(out);
    }

    private static String stackText(StackTraceElement[] frames) {
        StringBuilder sb = new StringBuilder();
        for (StackTraceElement f : frames) {
            if (sb.length() > MAX_STUCK_STACK) { sb.append("\t... (truncated)\n"); break; }
            sb.append("\tat ").append(f).append('\n');
        }
        return sb.toString();
    }

    /** {calls abandoned at their deadline, calls declared stuck}, since the JVM started. */
    static long[] callCounts() { return new long[] {ABANDONED.sum(), STUCK_TOTAL.sum()}; }

    @SuppressWarnings("removal")
    static final class ExitGuard extends SecurityManager {
        @Override public void checkPermission(Permission perm) {}
        @Override public void checkPermission(Permission perm, Object context) {}
        @Override public void checkExit(int status) {
            for (Class<?> c : getClassContext()) {
                if (c.getClassLoader() instanceof ModelLoader) {
                    Control ctl = CONTROL.get();
                    ctl.exitStatus = status;
                    ctl.exitAttempted = true;
                    throw new ExitTrapped(status);
                }
            }
        }
    }

    @SuppressWarnings("removal")
    static synchronized void installExitGuard() {
        if (exitGuard) return;
        try {
            if (System.getSecurityManager() == null) System.setSecurityManager(new ExitGuard());
            exitGuard = System.getSecurityManager() instanceof ExitGuard;
            if (!exitGuard) exitGuardError = "another SecurityManager is installed";
        } catch (Throwable e) {
            exitGuardError = "cannot install the exit guard (start the JVM with -Djava.security.manager=allow): " + e;
        }
    }

    static boolean causedByExit(Throwable t) {
        for (int i = 0; t != null && i < 20; i++, t = t.getCause()) if (t instanceof ExitTrapped) return true;
        return false;
    }
}
