package org.modelrunner.tests.wire;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Every scalar type, each repeated form the host decodes differently (double[], float[], int[], long[],
 * boolean[], lists, a list of unwrapped messages), maps, an optional field, a recursive message. */
public record Rich(double d, float f, int i32, long i64, int u32, long u64, int s32, long s64, int fx32, long fx64,
                   int sfx32, long sfx64, boolean flag, String text, byte[] blob, Color color, Point origin,
                   double[] ds, float[] fs, int[] is, long[] ls, List<String> texts, List<Point> points,
                   List<double[]> rows, Map<String, Double> weights, Map<Integer, Point> places,
                   Map<String, String> labels, Optional<String> nickname, List<Long> deltas, boolean[] flags,
                   int[] us, List<Long> fx, Node tree, List<Integer> colors, List<Double> dlist,
                   Map<String, Node> forest) {}
