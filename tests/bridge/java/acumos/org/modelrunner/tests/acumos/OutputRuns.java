package org.modelrunner.tests.acumos;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Answers whose Java types the runner spreads over the output message's fields (Acumos getPredictionRow). */
public class OutputRuns {
    /** Every scalar kind, singular then repeated runs (see tests/bridge/test_acumos_generic.py for the filling). */
    public static List<Object> kinds(String csv) {
        return new ArrayList<>(Arrays.asList(
                "virginica", 7, -70L, -1, -2L, -3, -4L, 5, 6L, -7, -8L, 0.5f, 11.96, true, new byte[] {1, 2}, 2,
                0.1, 0.2, "a", "b", 0.2, 1, 9, 2, new byte[] {3}, new byte[] {4}, 10L, 11L, 1.25f, 2.5f,
                false, true, 42));
    }

    /** A singular nested message, then a repeated one filled while values remain. */
    public static List<Object> nested(String csv) {
        return new ArrayList<>(Arrays.asList("top", 0.9, "because", 0.1, "other", 0.05));
    }

    /** The score as a String: the double field takes Doubles only. */
    public static List<Object> wrongType(String csv) {
        return new ArrayList<>(Arrays.asList("virginica", "11.96"));
    }

    /** One Double more than the message has fields for. */
    public static List<Object> tooMany(String csv) {
        return new ArrayList<>(Arrays.asList("virginica", 11.96, 0.5));
    }

    /** An immutable list (Acumos removes what it takes from the model's own list; this copies it). */
    public static List<Object> fixed(String csv) {
        return List.of("virginica", 11.96);
    }

    /** Nothing: the empty output message. */
    public static List<Object> nothing(String csv) {
        return new ArrayList<>();
    }
}
