package org.modelrunner.tests.acumos;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

/** An Acumos model taking java.io.File: the runner writes the CSV (or JSON) to a file and passes it. */
public class FileModel {
    /** The overload Acumos prefers to classify(String). */
    public static List<Object> classify(File input) throws IOException {
        return IrisClassifier.classify(Files.readString(input.toPath(), StandardCharsets.UTF_8));
    }

    public static List<Object> classify(String csv) {
        throw new IllegalStateException("Acumos calls the File overload");
    }

    /** [path, its folder's permissions, the content]. */
    public static List<Object> describe(File input) throws IOException {
        List<Object> out = new ArrayList<>();
        out.add(input.getAbsolutePath());
        out.add(PosixFilePermissions.toString(Files.getPosixFilePermissions(input.getParentFile().toPath())));
        out.add(Files.readString(input.toPath(), StandardCharsets.UTF_8));
        return out;
    }
}
