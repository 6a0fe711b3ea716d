package org.modelrunner.tests.acumos;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** An Acumos JSON model (modelInputType=JSON, modelOutputType=JSON): JSON of the input in, element 0 JSON out. */
public class JsonIris {
    private static final Pattern PETAL = Pattern.compile("\"petal_length\": ([0-9.Ee+-]+)");

    public static List<Object> predict(String json) {
        Matcher m = PETAL.matcher(json);
        double last = 0, total = 0;
        int n = 0;
        while (m.find()) { last = Double.parseDouble(m.group(1)); total += last; n++; }
        String species = last < 3 ? "setosa" : last < 5 ? "versicolor" : "virginica";
        List<Object> out = new ArrayList<>();
        out.add("{\"species\": \"" + species + "\", \"score\": " + total + ", \"rows\": \"" + n + "\"}");
        return out;
    }

    /**
     * With modelInputType=CSV and an input message {string answer}: returns the answer's text (the CSV's line 1) as
     * element 0, the JSON the runner parses into the output message.
     */
    public static List<Object> answer(String csv) {
        List<Object> out = new ArrayList<>();
        out.add(csv.substring(csv.indexOf('\n') + 1, csv.length() - 1));
        return out;
    }
}
