package org.modelrunner.tests.faults;

public class Reply {
    public String text;

    public Reply() {}

    public Reply(String text) { this.text = text; }
}
