package stuckjava;

/** A Java model whose Spin never stops: its loop catches Throwable, so the interrupt and ThreadDeath
 * sent to a call past its deadline are swallowed (tests/e2e/test_stuck_calls.py). n = 0 returns at once
 * (the example validation runs). */
public class Stuck {
    public static class Req { public long n; }
    public static class Reply { public long n; }

    private volatile long work;

    public Reply spin(Req req) {
        Reply out = new Reply();
        if (req.n == 0) return out;
        while (true) {
            try {
                churn();
            } catch (Throwable swallowed) {
                // not even ThreadDeath stops it
            }
        }
    }

    private void churn() {
        while (true) work = work * 31 + 7;
    }
}
