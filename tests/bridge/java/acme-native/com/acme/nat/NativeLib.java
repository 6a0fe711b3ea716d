package com.acme.nat;

/** Native scoring; the library is extracted to a new temporary file by each class loader that loads it. */
public final class NativeLib {
    private NativeLib() {}

    static { Extract.load(false); }

    public static native double score(double x);

    public static native String path();
}
