package org.modelrunner.tests.wire;

/** Public fields, no-arg constructor. */
public class Point {
    public double x;
    public double y;
}
