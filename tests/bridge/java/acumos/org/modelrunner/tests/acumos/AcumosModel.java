package org.modelrunner.tests.acumos;

import java.util.ArrayList;
import java.util.List;

/** An Acumos generic-model-runner style model: static List<?> m(String csv). */
public class AcumosModel {
    public static List<String> predict(String csv) {
        List<String> out = new ArrayList<>();
        for (String line : csv.split("\n")) {
            String[] cols = line.split(",");
            double petalLength = Double.parseDouble(cols[2]);
            out.add(petalLength < 3 ? "setosa" : petalLength < 5 ? "versicolor" : "virginica");
        }
        return out;
    }

    /** Echoes the text the runner built, to check its exact format. */
    public static List<String> raw(String text) { return List.of(text); }

    public static List<Double> lengths(String csv) {
        List<Double> out = new ArrayList<>();
        for (String line : csv.split("\n")) out.add(Double.parseDouble(line.split(",")[0]));
        return out;
    }
}
