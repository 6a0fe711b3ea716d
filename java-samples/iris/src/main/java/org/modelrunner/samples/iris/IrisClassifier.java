package org.modelrunner.samples.iris;

import java.util.ArrayList;
import java.util.List;

/**
 * A fixed linear softmax classifier of iris flowers.
 *
 * <p>Hand-set weights over (sepal length, sepal width, petal length, petal width): setosa scores high for
 * short petals, virginica for long and wide ones, versicolor is the reference class (score 0). The decision
 * boundaries fall at petal length 3 cm (setosa) and 2.5 * petal length + 5 * petal width = 21 (virginica),
 * which classifies the classic iris rows sensibly.
 */
public class IrisClassifier {
    static final String[] LABELS = Labels.NAMES;
    static final double[][] WEIGHTS = {
        {0.0, 0.5, -2.0, 0.0},  // setosa
        {0.0, 0.0, 0.0, 0.0},   // versicolor
        {0.0, 0.0, 2.5, 5.0},   // virginica
    };
    static final double[] BIAS = {4.3, 0.0, -21.0};

    public IrisClassifier() {}

    /** Class probabilities of one row of four features. */
    static double[] probabilities(double[] x) {
        if (x.length != 4) throw new IllegalArgumentException("an iris row has 4 features, got " + x.length);
        double[] z = new double[3];
        double max = Double.NEGATIVE_INFINITY;
        for (int k = 0; k < 3; k++) {
            double s = BIAS[k];
            for (int j = 0; j < 4; j++) s += WEIGHTS[k][j] * x[j];
            z[k] = s;
            max = Math.max(max, s);
        }
        double sum = 0;
        for (int k = 0; k < 3; k++) { z[k] = Math.exp(z[k] - max); sum += z[k]; }
        for (int k = 0; k < 3; k++) z[k] /= sum;
        return z;
    }

    static int argmax(double[] p) {
        int best = 0;
        for (int k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
        return best;
    }

    public IrisPrediction classify(IrisInput in) {
        double[] p = probabilities(in.features());
        return new IrisPrediction(LABELS[argmax(p)], p);
    }

    public List<IrisPrediction> classifyBatch(List<IrisInput> rows) {
        List<IrisPrediction> out = new ArrayList<>(rows.size());
        for (IrisInput row : rows) out.add(classify(row));
        return out;
    }

    /** Class index (0 setosa, 1 versicolor, 2 virginica) of each row of four features. */
    public int[] classifyMatrix(double[][] rows) {
        int[] out = new int[rows.length];
        for (int i = 0; i < rows.length; i++) {
            double[] x = rows[i];
            if (x.length != 4) throw new IllegalArgumentException("row " + i + " has " + x.length + " features, expected 4");
            // The argmax of the logits equals the argmax of the softmax: skip the exponentials.
            int best = 0;
            double bestScore = Double.NEGATIVE_INFINITY;
            for (int k = 0; k < 3; k++) {
                double s = BIAS[k] + WEIGHTS[k][0] * x[0] + WEIGHTS[k][1] * x[1] + WEIGHTS[k][2] * x[2] + WEIGHTS[k][3] * x[3];
                if (s > bestScore) { bestScore = s; best = k; }
            }
            out[i] = best;
        }
        return out;
    }
}
