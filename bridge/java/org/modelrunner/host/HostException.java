package org.modelrunner.host;

import java.io.PrintWriter;
import java.io.StringWriter;

/**
 * The only exception Python ever sees from the host. It carries the model's exception as strings, so no
 * model class (or exception class) is ever wrapped by JPype.
 *
 * <p>Kinds: {@code load} (artifacts, class, constructor), {@code bind} (contract does not bind; detail is a
 * JSON list of problems), {@code model} (the model threw), {@code exit} (the model called System.exit or
 * Runtime.halt), {@code deadline} (the call overran: answered at its deadline, and stopped), {@code input} (request bytes could
 * not be decoded), {@code closed} (the slot was closed), {@code inspect} (contract generation failed).
 */
public final class HostException extends Exception {
    private static final long serialVersionUID = 1L;
    private static final int MAX_STACK = 64 * 1024;

    private final String kind;
    private final String javaClass;
    private final String javaMessage;
    private final String javaStack;
    private final String detail;

    HostException(String kind, String message, Throwable cause, String detail) {
        super(message);
        this.kind = kind;
        this.javaClass = cause == null ? "" : cause.getClass().getName();
        this.javaMessage = cause == null ? "" : String.valueOf(cause.getMessage());
        this.javaStack = cause == null ? "" : stackOf(cause);
        this.detail = detail == null ? "{}" : detail;
    }

    HostException(String kind, String message) { this(kind, message, null, null); }

    static String stackOf(Throwable t) {
        try {
            StringWriter sw = new StringWriter();
            t.printStackTrace(new PrintWriter(sw));
            String s = sw.toString();
            return s.length() > MAX_STACK ? s.substring(0, MAX_STACK) + "\n\t... (truncated)" : s;
        } catch (Throwable e) { // e.g. OutOfMemoryError while formatting
            return t.getClass().getName();
        }
    }

    public String getKind() { return kind; }
    public String getJavaClass() { return javaClass; }
    public String getJavaMessage() { return javaMessage; }
    public String getJavaStack() { return javaStack; }
    /** JSON object (or list, for kind {@code bind}) with details. */
    public String getDetail() { return detail; }
}
