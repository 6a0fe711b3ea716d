package org.modelrunner.tests.kitchen;

/** Public fields, no-arg constructor. */
public class Point {
    public double x;
    public double y;
}
