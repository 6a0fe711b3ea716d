package org.modelrunner.samples.weka.trainer;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.OutputStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

import weka.classifiers.trees.J48;
import weka.core.Instances;

/**
 * Build-time trainer of the weka sample: fits a J48 tree (Weka's defaults: -C 0.25 -M 2) on an ARFF
 * file whose last attribute is the class, and writes {Classifier, empty Instances header} to the
 * output file with plain Java serialization. Used by the `trainModel` Gradle task; not in the model jar.
 *
 * <p>Usage: {@code TrainIrisTree <data.arff> <out.model>}
 */
public final class TrainIrisTree {

    private TrainIrisTree() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: TrainIrisTree <data.arff> <out.model>");
            System.exit(2);
        }
        Path data = Paths.get(args[0]);
        Path out = Paths.get(args[1]);

        Instances instances;
        try (Reader reader = Files.newBufferedReader(data, StandardCharsets.UTF_8)) {
            instances = new Instances(reader);
        }
        instances.setClassIndex(instances.numAttributes() - 1);

        J48 tree = new J48();
        tree.buildClassifier(instances);

        int right = 0;
        for (int i = 0; i < instances.numInstances(); i++) {
            if (tree.classifyInstance(instances.instance(i)) == instances.instance(i).classValue()) {
                right++;
            }
        }
        // A tree that cannot fit its own training data means the data or the build is broken.
        if (right < 0.9 * instances.numInstances()) {
            throw new IllegalStateException("J48 fits only " + right + " of " + instances.numInstances()
                    + " training rows of " + data);
        }

        write(out, new Object[] {tree, new Instances(instances, 0)});
    }

    /** Writes next to the target, then renames: a reader never sees half a model. */
    private static void write(Path out, Object value) throws IOException {
        Path parent = out.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path tmp = parent.resolve(out.getFileName() + ".tmp");  // not createTempFile: that one is 0600
        try {
            try (OutputStream stream = new BufferedOutputStream(Files.newOutputStream(tmp));
                 ObjectOutputStream objects = new ObjectOutputStream(stream)) {
                objects.writeObject(value);
            }
            Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
