package org.modelrunner.tests.wire;

import java.util.List;

/** The messages of protos/iris.proto as Java types the host binds. */
public final class Iris {
    private Iris() {}

    public record IrisInput(double sepalLength, double sepalWidth, double petalLength, double petalWidth) {}

    public record IrisPrediction(String species, double[] probabilities) {}

    public record IrisBatch(List<IrisInput> rows) {}

    public record FeatureMatrix(double[][] rows) {}

    public record ClassIndices(int[] indices) {}
}
