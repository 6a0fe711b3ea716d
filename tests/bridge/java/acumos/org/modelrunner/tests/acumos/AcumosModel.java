package org.modelrunner.tests.acumos;

import java.util.ArrayList;
import java.util.List;

/** An Acumos generic-model-runner style model: static List<?> m(String csv), the CSV's first line the header. */
public class AcumosModel {
    public static List<String> predict(String csv) {
        List<String> out = new ArrayList<>();
        String[] lines = csv.split("\n");
        for (int i = 1; i < lines.length; i++) { // line 0: the header
            String[] cols = lines[i].split(",");
            double petalLength = Double.parseDouble(cols[2]);
            out.add(petalLength < 3 ? "setosa" : petalLength < 5 ? "versicolor" : "virginica");
        }
        return out;
    }

    /** Echoes the text the runner built, to check its exact format. */
    public static List<String> raw(String text) { return List.of(text); }

    public static List<Double> lengths(String csv) {
        List<Double> out = new ArrayList<>();
        String[] lines = csv.split("\n");
        for (int i = 1; i < lines.length; i++) out.add(Double.parseDouble(lines[i].split(",")[0])); // line 0: the header
        return out;
    }
}
