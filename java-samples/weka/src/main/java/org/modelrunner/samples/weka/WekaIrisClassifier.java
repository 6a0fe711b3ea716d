package org.modelrunner.samples.weka;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectStreamClass;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import weka.classifiers.Classifier;
import weka.core.DenseInstance;
import weka.core.Instance;
import weka.core.Instances;

/**
 * Iris species from a Weka J48 decision tree trained at build time on the classic iris data.
 *
 * <p>The tree and the header of its training data (attribute names and the species labels) are
 * loaded from {@value #MODEL_FILE} in the bundle's artifact folder, which the runner passes to the
 * constructor. Weka itself comes from the bundle's {@code lib/weka.jar}. The class indices of
 * {@link #classifyMatrix} follow the species order of the training data: setosa, versicolor, virginica.
 */
public final class WekaIrisClassifier {

    /** The serialized model in the artifact folder: an Object[] {Classifier, Instances header}. */
    public static final String MODEL_FILE = "iris-j48.model";

    private final Classifier tree;
    private final Instances header;

    /** Loads the trained tree from {@code artifactDir}/{@value #MODEL_FILE}. */
    public WekaIrisClassifier(Path artifactDir) throws IOException, ClassNotFoundException {
        Path file = artifactDir.resolve(MODEL_FILE);
        if (!Files.isRegularFile(file)) {
            throw new IOException("model file not found: " + file + " (build the weka sample: gradle :weka:assemble)");
        }
        Object[] stored;
        try (InputStream in = new BufferedInputStream(Files.newInputStream(file));
             ObjectInputStream objects = new OwnLoaderObjectInputStream(in)) {
            stored = (Object[]) objects.readObject();
        }
        this.tree = (Classifier) stored[0];
        this.header = (Instances) stored[1];
    }

    /** Classifies one flower. */
    public IrisPrediction classify(IrisInput in) {
        double[] distribution;
        try {
            distribution = tree.distributionForInstance(toInstance(in));
        } catch (Exception e) {  // Weka declares Exception on every classifier call
            throw new IllegalStateException("J48 could not classify the row: " + e.getMessage(), e);
        }
        int best = 0;
        for (int k = 1; k < distribution.length; k++) {
            if (distribution[k] > distribution[best]) {
                best = k;
            }
        }
        return new IrisPrediction(header.classAttribute().value(best), distribution);
    }

    /** Classifies every row, in order. */
    public List<IrisPrediction> classifyBatch(List<IrisInput> rows) {
        List<IrisPrediction> out = new ArrayList<>(rows.size());
        for (IrisInput row : rows) {
            out.add(classify(row));
        }
        return out;
    }

    /**
     * Class index (0 setosa, 1 versicolor, 2 virginica) of every row of four features, for the
     * contract's numeric batch (ClassifyMatrix): one crossing of the bridge per batch.
     */
    public int[] classifyMatrix(double[][] rows) {
        int[] out = new int[rows.length];
        for (int i = 0; i < rows.length; i++) {
            if (rows[i].length != 4) {
                throw new IllegalArgumentException("row " + i + " has " + rows[i].length + " values, expected 4 "
                        + "(sepal length, sepal width, petal length, petal width)");
            }
            try {
                out[i] = (int) tree.classifyInstance(toInstance(rows[i][0], rows[i][1], rows[i][2], rows[i][3]));
            } catch (Exception e) {
                throw new IllegalStateException("J48 could not classify row " + i + ": " + e.getMessage(), e);
            }
        }
        return out;
    }

    private Instance toInstance(IrisInput in) {
        return toInstance(in.getSepalLength(), in.getSepalWidth(), in.getPetalLength(), in.getPetalWidth());
    }

    private Instance toInstance(double sepalLength, double sepalWidth, double petalLength, double petalWidth) {
        double[] values = {sepalLength, sepalWidth, petalLength, petalWidth, 0};
        Instance row = new DenseInstance(1.0, values);
        row.setDataset(header);  // only read: the header is shared by every call
        row.setClassMissing();
        return row;
    }

    /** Resolves the stored classes through this model's own class loader (the bundle's loader). */
    private static final class OwnLoaderObjectInputStream extends ObjectInputStream {
        OwnLoaderObjectInputStream(InputStream in) throws IOException {
            super(in);
        }

        @Override
        protected Class<?> resolveClass(ObjectStreamClass desc) throws IOException, ClassNotFoundException {
            try {
                return Class.forName(desc.getName(), false, WekaIrisClassifier.class.getClassLoader());
            } catch (ClassNotFoundException e) {
                return super.resolveClass(desc);  // primitives and arrays of them
            }
        }
    }
}
