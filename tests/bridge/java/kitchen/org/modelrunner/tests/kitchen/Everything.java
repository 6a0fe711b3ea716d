package org.modelrunner.tests.kitchen;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/** A record using every mapped type. */
public record Everything(int i32, long i64, float f, double d, boolean flag, String name, byte[] blob, Color color,
                         Point origin, List<Point> points, String[] tags, Map<String, Double> weights,
                         Map<String, Point> places, Optional<String> nickname, long[] counts, int delta) {}
