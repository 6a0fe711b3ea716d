package org.modelrunner.host;

import java.security.Permission;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Protection of the serving process from its models: an exit guard (a permissive SecurityManager whose only
 * check is that no model class is on the stack of System.exit / Runtime.halt) and a watchdog that stops
 * calls past their deadline: interrupt first, then Thread.stop after a grace period (repeated while the
 * call keeps running). The call runs on the caller's own thread, so an untimed call costs nothing extra and a
 * timed one two uncontended monitor enters. The watchdog thread never runs model code (so it needs no model
 * context class loader, and holds none).
 */
final class Guard {
    private Guard() {}

    static final int IDLE = 0, RUNNING = 1, INTERRUPTED = 2, STOPPED = 3;
    static final long GRACE_NANOS = Long.getLong("modelrunner.stopGraceMillis", 200L) * 1_000_000L;

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
        volatile boolean exitAttempted;
        volatile int exitStatus;

        Control(Thread t) { thread = t; }

        void begin(long timeoutMillis) {
            synchronized (this) {
                deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
                timedOut = false;
                state = RUNNING;
            }
            if (!registered) { registered = true; TIMED.add(this); startWatchdog(); }
        }

        /** Ends a timed call; true when the watchdog interrupted or stopped it. Idempotent. */
        boolean end() {
            boolean t;
            synchronized (this) {
                if (state != IDLE) { timedOut = state >= INTERRUPTED; state = IDLE; }
                t = timedOut;
            }
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
                if (!c.thread.isAlive()) { TIMED.remove(c); continue; }
                synchronized (c) {
                    if (c.state == RUNNING && now - c.deadline >= 0) {
                        c.state = INTERRUPTED;
                        c.mark = now;
                        c.thread.interrupt();
                    } else if (c.state >= INTERRUPTED && now - c.mark >= GRACE_NANOS) {
                        c.state = STOPPED;
                        c.mark = now;
                        try { c.thread.stop(); } catch (Throwable e) { /* JDK without Thread.stop: interrupt only */ }
                    }
                }
            }
        }
    }

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
