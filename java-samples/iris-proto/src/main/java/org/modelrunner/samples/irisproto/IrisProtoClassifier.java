package org.modelrunner.samples.irisproto;

import org.modelrunner.samples.irisproto.proto.ClassIndices;
import org.modelrunner.samples.irisproto.proto.FeatureMatrix;
import org.modelrunner.samples.irisproto.proto.FeatureRow;
import org.modelrunner.samples.irisproto.proto.IrisBatch;
import org.modelrunner.samples.irisproto.proto.IrisInput;
import org.modelrunner.samples.irisproto.proto.IrisPrediction;
import org.modelrunner.samples.irisproto.proto.IrisPredictions;

/**
 * Iris species from the four flower measurements, written against the protobuf-java classes
 * generated from {@code protos/iris.proto} (the proto-native calling convention).
 *
 * <p>A fixed linear softmax classifier: one weight row and bias per species, fitted once offline on
 * the classic 150 iris rows (98% of them right). Thread-safe: it holds no mutable state.
 */
public final class IrisProtoClassifier {

    /** Species in the order of the contract's probabilities and class indices. */
    static final String[] SPECIES = {"setosa", "versicolor", "virginica"};

    /** Weights per species over (sepal length, sepal width, petal length, petal width). */
    private static final double[][] WEIGHTS = {
        {1.18, 2.63, -3.79, -1.89},
        {0.44, -0.15, -0.16, -1.89},
        {-1.63, -2.48, 3.94, 3.78},
    };

    private static final double[] BIAS = {1.71, 4.11, -5.82};

    /** Classifies one flower. */
    public IrisPrediction classify(IrisInput in) {
        return predict(in.getSepalLength(), in.getSepalWidth(), in.getPetalLength(), in.getPetalWidth());
    }

    /** Classifies every row of a batch, in order. */
    public IrisPredictions classifyBatch(IrisBatch batch) {
        IrisPredictions.Builder out = IrisPredictions.newBuilder();
        for (IrisInput row : batch.getRowsList()) {
            out.addPredictions(classify(row));
        }
        return out.build();
    }

    /** Class index (0 setosa, 1 versicolor, 2 virginica) of every row of four features. */
    public ClassIndices classifyMatrix(FeatureMatrix matrix) {
        ClassIndices.Builder out = ClassIndices.newBuilder();
        for (int i = 0; i < matrix.getRowsCount(); i++) {
            FeatureRow row = matrix.getRows(i);
            if (row.getValuesCount() != 4) {
                throw new IllegalArgumentException(
                        "row " + i + " has " + row.getValuesCount() + " values, expected 4 "
                                + "(sepal length, sepal width, petal length, petal width)");
            }
            out.addIndices(argmax(scores(row.getValues(0), row.getValues(1), row.getValues(2), row.getValues(3))));
        }
        return out.build();
    }

    private static IrisPrediction predict(double sepalLength, double sepalWidth, double petalLength, double petalWidth) {
        double[] probabilities = softmax(scores(sepalLength, sepalWidth, petalLength, petalWidth));
        IrisPrediction.Builder out = IrisPrediction.newBuilder().setSpecies(SPECIES[argmax(probabilities)]);
        for (double p : probabilities) {
            out.addProbabilities(p);
        }
        return out.build();
    }

    private static double[] scores(double sepalLength, double sepalWidth, double petalLength, double petalWidth) {
        double[] features = {sepalLength, sepalWidth, petalLength, petalWidth};
        double[] scores = new double[WEIGHTS.length];
        for (int k = 0; k < WEIGHTS.length; k++) {
            double s = BIAS[k];
            for (int j = 0; j < features.length; j++) {
                s += WEIGHTS[k][j] * features[j];
            }
            scores[k] = s;
        }
        return scores;
    }

    private static double[] softmax(double[] scores) {
        double max = scores[argmax(scores)];
        double sum = 0;
        double[] out = new double[scores.length];
        for (int k = 0; k < scores.length; k++) {
            out[k] = Math.exp(scores[k] - max);  // shifted by the max: no overflow
            sum += out[k];
        }
        for (int k = 0; k < scores.length; k++) {
            out[k] /= sum;
        }
        return out;
    }

    private static int argmax(double[] values) {
        int best = 0;
        for (int k = 1; k < values.length; k++) {
            if (values[k] > values[best]) {
                best = k;
            }
        }
        return best;
    }
}
