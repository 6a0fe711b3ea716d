package com.acme.nat;

/** Native scoring; the library is extracted to one fixed path per process. */
public final class FixedPathLib {
    private FixedPathLib() {}

    static { Extract.load(true); }

    public static native double score(double x);

    public static native String path();
}
