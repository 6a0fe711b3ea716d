package org.modelrunner.tests.faults;

/**
 * A model that cannot be stopped: its loops catch Throwable, so they swallow the watchdog's interrupt and
 * ThreadDeath alike. Only {@link #release} (or the system property {@code modelrunner.tests.stubborn.release})
 * lets them end.
 */
public class StubbornModel implements AutoCloseable {
    private static volatile boolean released;
    private static volatile boolean stubbornClose;
    private volatile long work;
    private volatile long swallowed;

    public Reply stubborn(Req r) {
        while (!released()) {
            try {
                churn();
            } catch (Throwable t) {
                swallowed++;
            }
        }
        return new Reply("released after " + swallowed + " swallowed");
    }

    private void churn() {
        while (!released()) work = work * 31 + 7;
    }

    private static boolean released() {
        return released || Boolean.getBoolean("modelrunner.tests.stubborn.release");
    }

    public Reply release(Req r) {
        released = true;
        return new Reply("released");
    }

    /** From now on close() is as stubborn as the calls. */
    public Reply armClose(Req r) {
        stubbornClose = true;
        return new Reply("armed");
    }

    /** The thread the call runs on and its context class loader. */
    public Reply where(Req r) {
        Thread t = Thread.currentThread();
        ClassLoader l = t.getContextClassLoader();
        return new Reply(t.getName() + " " + (l == StubbornModel.class.getClassLoader() ? "model" : String.valueOf(l)));
    }

    @Override public void close() {
        if (!stubbornClose) return;
        while (!released()) {
            try {
                churn();
            } catch (Throwable t) {
                swallowed++;
            }
        }
    }
}
