package org.modelrunner.tests.wire;

/** Answers each message as it was decoded: what comes back is what the host's codec read, written again. */
public class WireEcho {
    public Rich echoRich(Rich r) { return r; }

    public Node echoNode(Node n) { return n; }

    /** Recurses until the stack overflows when asked to (value 1): a StackOverflowError of the model's own. */
    public Node overflow(Node n) { return n.value == 1 ? overflow(n) : n; }

    public Iris.IrisInput echoInput(Iris.IrisInput x) { return x; }

    public Iris.IrisPrediction echoPrediction(Iris.IrisPrediction p) { return p; }

    public Iris.IrisBatch echoBatch(Iris.IrisBatch b) { return b; }

    public Iris.FeatureMatrix echoMatrix(Iris.FeatureMatrix m) { return m; }

    public Iris.ClassIndices echoIndices(Iris.ClassIndices c) { return c; }
}
