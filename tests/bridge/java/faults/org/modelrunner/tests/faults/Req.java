package org.modelrunner.tests.faults;

public class Req {
    public String text;
    public int n;
}
