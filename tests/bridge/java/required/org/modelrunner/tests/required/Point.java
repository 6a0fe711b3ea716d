package org.modelrunner.tests.required;

/** A bean: its fields have defaults of their own, nothing is required. */
public class Point {
    public double x;
    public double y;
}
