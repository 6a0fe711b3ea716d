package org.modelrunner.tests.jni;

import com.acme.nat.FixedPathLib;

/** A model over a library that extracts its native half to one fixed path per process. */
public class FixedPathScorer {
    public FixedPathScorer() { FixedPathLib.path(); }

    public double score(double x) { return FixedPathLib.score(x); }

    public String where() { return FixedPathLib.path(); }
}
