package org.acme.logs;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.logging.Level;
import java.util.logging.Logger;

/** A model that talks: System.out, System.err, java.util.logging, from its own threads and a shared pool. */
public class Chatty {
    private static final Logger JUL = Logger.getLogger("org.acme.logs.Chatty");

    static { System.out.println("chatty: static initialiser"); }

    public static class Req {
        public String text;
        public int n;
    }

    public static class Reply {
        public String text;

        Reply(String text) { this.text = text; }
        public Reply() {}
    }

    public Chatty() { System.err.println("chatty: constructed"); }

    /** {@code n} lines "text i" on System.out. */
    public Reply say(Req r) {
        for (int i = 0; i < Math.max(1, r.n); i++) System.out.println(r.text + " " + i);
        return new Reply("said");
    }

    public Reply complain(Req r) {
        System.err.println("complaint: " + r.text);
        return new Reply("complained");
    }

    /** One line written in pieces, with a \r\n end; then a line in bytes (UTF-8). */
    public Reply pieces(Req r) {
        System.out.print("pieces: ");
        System.out.print(r.text);
        System.out.print(' ');
        System.out.print(42);
        System.out.print("\r\n");
        System.out.write(("bytes: " + r.text + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8), 0,
                ("bytes: " + r.text + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8).length);
        System.out.flush();
        return new Reply("pieces");
    }

    public Reply jul(Req r) {
        JUL.info("jul info " + r.text);
        JUL.log(Level.WARNING, "jul warning {0}", r.text);
        JUL.log(Level.SEVERE, "jul severe " + r.text, new IllegalStateException("jul boom"));
        JUL.fine("jul fine (below the root level: not logged)");
        return new Reply("jul");
    }

    /** {@code n} threads of the model's own, each printing 200 lines in pieces at once. */
    public Reply threads(Req r) throws InterruptedException {
        List<Thread> ts = new ArrayList<>();
        for (int k = 0; k < r.n; k++) {
            final int id = k;
            Thread t = new Thread(() -> {
                for (int j = 0; j < 200; j++) {
                    System.out.print("t" + id + " line " + j + " ");
                    System.out.print("x".repeat(50 + (j % 7) * 30));
                    System.out.println(" end");
                }
            }, "chatty-" + k);
            ts.add(t);
            t.start();
        }
        for (Thread t : ts) t.join();
        return new Reply("threads");
    }

    /** A task on ForkJoinPool.commonPool(), whose threads belong to no model. */
    public Reply pool(Req r) {
        CompletableFuture.runAsync(() -> System.out.println("pool: " + r.text)).join();
        return new Reply("pool");
    }

    /** {@code n} lines of 1,000 characters, as fast as it can. */
    public Reply flood(Req r) {
        String payload = "f".repeat(990);
        for (int i = 0; i < r.n; i++) System.out.println(payload + " " + i);
        return new Reply("flooded");
    }

    /** One line of {@code n} characters. */
    public Reply longLine(Req r) {
        System.out.println("L".repeat(r.n));
        return new Reply("long");
    }

    /** Throws (but not on an empty request: validation before a publish calls every method with one). */
    public Reply fail(Req r) {
        if (r.text == null || r.text.isEmpty()) return new Reply("");
        System.err.println("about to fail: " + r.text);
        throw new IllegalStateException("boom " + r.text);
    }

    public Reply quiet(Req r) { return new Reply(r.text); }

    /** Text Python cannot take as it is: a lone surrogate, a NUL. */
    public Reply odd(Req r) {
        JUL.info("lone " + '\uD800' + " nul " + '\0' + " pair \uD83D\uDE00");
        System.out.println("nul " + '\0' + " in a line");
        return new Reply("odd");
    }
}
