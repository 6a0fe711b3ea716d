package org.modelrunner.tests.jni;

/** A JNI model: its native half (libscorer.so) is found by System.loadLibrary in the bundle's lib/native/. */
public class JniScorer {
    static { System.loadLibrary("scorer"); }

    static native double nativeScore(double x);

    static native String nativePath();

    public double score(double x) { return nativeScore(x); }

    /** The file the native library was loaded from. */
    public String where() { return nativePath(); }
}
