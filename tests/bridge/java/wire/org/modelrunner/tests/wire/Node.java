package org.modelrunner.tests.wire;

/** A recursive message: nesting as deep as a caller likes. */
public class Node {
    public Node child;
    public int value;
    public String label;
}
