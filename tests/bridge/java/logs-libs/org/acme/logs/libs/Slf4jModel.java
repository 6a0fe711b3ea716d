package org.acme.logs.libs;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Logs through SLF4J; the binding (slf4j-simple, logback) is whatever the bundle's lib/ ships. */
public class Slf4jModel {
    private static final Logger LOG = LoggerFactory.getLogger(Slf4jModel.class);

    public static class Req { public String text; }

    public static class Reply {
        public String text;
        public Reply() {}
        Reply(String text) { this.text = text; }
    }

    public Slf4jModel() { LOG.info("slf4j model constructed"); }

    public Reply say(Req r) {
        LOG.info("slf4j info {}", r.text);
        LOG.warn("slf4j warn {}", r.text);
        return new Reply(r.text);
    }
}
