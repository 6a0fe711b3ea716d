package org.modelrunner.tests.faults;

public class NoCtorModel {
    public NoCtorModel(int size) {}

    public Reply echo(Req r) { return new Reply(r.text); }
}
