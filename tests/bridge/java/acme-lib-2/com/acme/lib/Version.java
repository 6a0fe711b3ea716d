package com.acme.lib;

/** Release 2.0 of a small library (the other release has the same class names, other behaviour). */
public final class Version {
    private Version() {}

    public static String value() { return "2.0"; }
}
