package org.modelrunner.tests.faults;

public class BadCtorModel {
    public BadCtorModel() { throw new IllegalStateException("licence file missing"); }

    public Reply echo(Req r) { return new Reply(r.text); }
}
