package org.modelrunner.tests.jni;

import com.acme.nat.NativeLib;

/** A model over a library that extracts its native half from its own JAR to a new temporary file. */
public class ExtractScorer {
    public ExtractScorer() { NativeLib.path(); } // libraries load their native code when first used

    public double score(double x) { return NativeLib.score(x); }

    public String where() { return NativeLib.path(); }
}
