package org.modelrunner.tests.acumos;

import java.util.ArrayList;
import java.util.List;

/**
 * Written the way the Acumos generic-java samples are: the CSV's first line is the header (skipped), a row per
 * line; the answer is a list of mixed Java types that the runner spreads over the output message's fields.
 */
public class IrisClassifier {
    /** [species of the last row, sum of its values]: a String and a Double. */
    public static List<Object> classify(String csv) {
        String[] lines = csv.split("\n");
        String species = "none";
        double score = 0;
        for (int i = 1; i < lines.length; i++) { // line 0: the header
            if (lines[i].isEmpty()) continue;
            String[] cols = lines[i].split(",");
            double petalLength = Double.parseDouble(cols[2]);
            species = petalLength < 3 ? "setosa" : petalLength < 5 ? "versicolor" : "virginica";
            score = 0;
            for (String c : cols) score += Double.parseDouble(c);
        }
        List<Object> out = new ArrayList<>();
        out.add(species);
        out.add(score);
        return out;
    }

    /** The text the runner passed, unchanged. */
    public static List<Object> echo(String text) {
        List<Object> out = new ArrayList<>();
        out.add(text);
        return out;
    }
}
