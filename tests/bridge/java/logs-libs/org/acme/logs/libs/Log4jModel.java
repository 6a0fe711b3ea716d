package org.acme.logs.libs;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/** Logs through the Log4j 2 API with log4j-core in lib/ and no configuration (errors to the console). */
public class Log4jModel {
    private static final Logger LOG = LogManager.getLogger(Log4jModel.class);

    public static class Req { public String text; }

    public static class Reply {
        public String text;
        public Reply() {}
        Reply(String text) { this.text = text; }
    }

    public Reply say(Req r) {
        LOG.error("log4j error {}", r.text);
        return new Reply(r.text);
    }
}
