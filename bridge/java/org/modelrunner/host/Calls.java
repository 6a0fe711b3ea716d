package org.modelrunner.host;

import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import java.util.concurrent.locks.LockSupport;

/**
 * The host's call threads: model code under a deadline runs on one of them, so that its caller is answered at
 * the deadline whatever the model does (a model that swallows ThreadDeath, or a JDK without Thread.stop, keeps
 * only that call thread, never the caller's). A cached pool of daemon threads {@code model-call-N}: the most
 * recently idle thread takes the next call (warm caches), a thread idle for
 * {@code -Dmodelrunner.callThreadKeepAliveMillis} (60 s) ends, and there are as many as calls run at once.
 *
 * <p>The hand-off is a volatile write and an unpark each way (a brief spin first, see SPIN_NANOS). A call
 * thread whose call the watchdog interrupted or stopped is not reused (a Thread.stop may still be on its way to
 * it): it ends once the model code returns, and an abandoned one that never returns is reported as stuck (Guard).
 */
final class Calls {
    private Calls() {}

    static final long KEEP_ALIVE_NANOS = Math.max(1L, Long.getLong("modelrunner.callThreadKeepAliveMillis", 60_000L)) * 1_000_000L;
    /**
     * How long a caller spins before parking ({@code -Dmodelrunner.callSpinNanos}, 2 µs): a call that short is
     * answered without a context switch. An idle call thread spins for {@code -Dmodelrunner.callThreadSpinNanos}
     * (0) before parking: back-to-back calls on idle cores then skip a wake-up (about 7 µs instead of 13 µs per
     * hand-off), but on busy cores the spinning slows every call (measured: 25-50 µs instead of 12 µs).
     */
    static final long SPIN_NANOS = Math.max(0L, Long.getLong("modelrunner.callSpinNanos", 2_000L));
    static final long THREAD_SPIN_NANOS = Math.max(0L, Long.getLong("modelrunner.callThreadSpinNanos", 0L));

    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final ConcurrentLinkedDeque<Worker> IDLE = new ConcurrentLinkedDeque<>();

    /** Model code to run on a call thread. {@link #run} stores its outcome; it must not throw. */
    abstract static class Task {
        /** What its caller waits on, apart from the task: the call thread signals it holding nothing of the task
         * (which reaches the model version), so a version closed by the task is unreachable once its caller goes on. */
        final Completion done = new Completion();
        /** The call thread that runs it (set before it runs). */
        volatile Thread runner;
        /** Set by run when the watchdog interrupted or stopped the call: its thread must not be reused. */
        boolean retire;

        abstract void run();

        /** The outcome of a run that threw past {@link #run}'s own handling (e.g. an error while formatting one). */
        abstract void failed(Throwable e);
    }

    /** A task's state as its caller sees it: running, done, or abandoned at the deadline. */
    static final class Completion {
        static final int RUNNING = 0, DONE = 1, ABANDONED = 2;
        private static final AtomicIntegerFieldUpdater<Completion> STATE =
                AtomicIntegerFieldUpdater.newUpdater(Completion.class, "state");

        private volatile int state;
        private Thread waiter;

        private void complete() {
            if (STATE.compareAndSet(this, RUNNING, DONE)) LockSupport.unpark(waiter);
        }
    }

    /**
     * Runs {@code t} on a call thread and waits for it until {@code deadlineNanos} (System.nanoTime). True when it
     * completed; false when the deadline came first: the call is abandoned (counted), its thread left to the
     * watchdog.
     */
    static boolean runUntil(Task t, long deadlineNanos) {
        Completion c = t.done;
        c.waiter = Thread.currentThread();
        Worker w = IDLE.pollFirst();
        if (w == null) {
            new Worker(t).start();
        } else {
            w.task = t;
            LockSupport.unpark(w);
        }
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        while (c.state == Completion.RUNNING && System.nanoTime() - spinUntil < 0) Thread.onSpinWait();
        boolean interrupted = false;
        try {
            while (c.state == Completion.RUNNING) {
                long left = deadlineNanos - System.nanoTime();
                if (left <= 0) {
                    if (Completion.STATE.compareAndSet(c, Completion.RUNNING, Completion.ABANDONED)) {
                        Guard.ABANDONED.increment();
                        return false;
                    }
                    break;
                }
                LockSupport.parkNanos(t, left);
                if (Thread.interrupted()) interrupted = true; // or park would return at once: restored below
            }
            return true;
        } finally {
            if (interrupted) Thread.currentThread().interrupt();
        }
    }

    /**
     * Where an abandoned call's thread was when its caller gave up: the stack of the deadline error (the model's
     * own frames, not an exception the model threw).
     */
    static final class StillRunning extends Throwable {
        private static final long serialVersionUID = 1L;

        StillRunning(Task t) {
            super(stillRunning(t), null, false, true);
            Thread r = t.runner;
            setStackTrace(r == null ? new StackTraceElement[0] : r.getStackTrace());
        }

        private static String stillRunning(Task t) {
            Thread r = t.runner;
            return r == null ? "not started yet" : "still running on " + r.getName() + " at the deadline";
        }
    }

    private static final class Worker extends Thread {
        volatile Task task;

        Worker(Task first) {
            super("model-call-" + SEQ.incrementAndGet());
            setDaemon(true);
            // Made by a caller, it would inherit the caller's context loader: it runs model code only within a Task.
            setContextClassLoader(Slot.HOST_LOADER);
            task = first;
        }

        @Override public void run() {
            Task t = task;
            while (t != null) {
                try {
                    t.runner = this;
                    t.run();
                } catch (Throwable e) {
                    t.retire = true;
                    t.failed(e);
                }
                Completion done = t.done;
                boolean retire = t.retire;
                t = null; // the caller may go on (and collect the version) the moment it hears: hold nothing of it
                task = null;
                if (retire) { // a Thread.stop may still land: this thread serves no further call
                    done.complete();
                    return;
                }
                // idle before the caller hears of it, so that its next call finds this thread
                IDLE.offerFirst(this);
                done.complete();
                t = next();
            }
        }

        /** Waits idle for the next task; null when idle for the keep-alive (the thread then ends). */
        private Task next() {
            long spinUntil = System.nanoTime() + THREAD_SPIN_NANOS;
            for (Task t; System.nanoTime() - spinUntil < 0; Thread.onSpinWait()) if ((t = task) != null) return t;
            long until = System.nanoTime() + KEEP_ALIVE_NANOS;
            boolean expired = false;
            while (true) {
                Task t = task;
                if (t != null) return t;
                Thread.interrupted(); // an interrupt the model left set must not make park return at once
                long left = until - System.nanoTime();
                if (!expired && left <= 0) {
                    if (IDLE.remove(this)) return null;
                    expired = true; // a caller took this thread: its task is on the way
                }
                if (expired) LockSupport.park(this); else LockSupport.parkNanos(this, left);
            }
        }
    }
}
