package org.modelrunner.tests.faults;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** A model that misbehaves on request: throws, exits, hangs, spins, exhausts memory. */
public class FaultModel {
    private final String greeting;
    private volatile long spins;

    /** Reads an optional greeting.txt from the artifact folder. */
    public FaultModel(Path artifactDir) throws IOException {
        Path g = artifactDir.resolve("greeting.txt");
        greeting = Files.exists(g) ? Files.readString(g).trim() : "";
    }

    public Reply echo(Req r) { return new Reply(greeting + r.text + "#" + r.n); }

    public Reply fail(Req r) { return new Reply(check(r.n)); }

    private static String check(int n) {
        throw new IllegalStateException("bad row " + n);
    }

    public Reply exit(Req r) {
        System.exit(3);
        return new Reply("still here");
    }

    public Reply halt(Req r) {
        Runtime.getRuntime().halt(4);
        return new Reply("still here");
    }

    /** Catches the SecurityException of a blocked exit and carries on: the call must still fail. */
    public Reply sneakyExit(Req r) {
        try {
            System.exit(5);
        } catch (SecurityException e) {
            return new Reply("caught");
        }
        return new Reply("still here");
    }

    public Reply sleep(Req r) throws InterruptedException {
        Thread.sleep(600_000);
        return new Reply("woke");
    }

    /** Ignores interrupts: only Thread.stop ends it. */
    public Reply spin(Req r) {
        while (true) {
            spins++;
            if (spins == Long.MIN_VALUE) break;
        }
        return new Reply("done");
    }

    /** Ignores interrupts for {@code r.n} milliseconds, then answers. */
    public Reply busy(Req r) {
        long end = System.nanoTime() + r.n * 1_000_000L;
        while (System.nanoTime() - end < 0) spins++;
        return new Reply("busy " + r.n);
    }

    /** The thread the call runs on, and whether it is interrupted. */
    public Reply where(Req r) {
        Thread t = Thread.currentThread();
        return new Reply(t.getName() + (t.isInterrupted() ? " interrupted" : ""));
    }

    public Reply hog(Req r) {
        List<long[]> hog = new ArrayList<>();
        while (true) hog.add(new long[1 << 20]);
    }
}
