package com.acme.plugin;

import com.acme.lib.Greeter;
import com.acme.lib.Version;

/** A provider of com.acme.lib.Greeter in a JAR of its own, registered in META-INF/services. */
public final class HelloGreeter implements Greeter {
    public HelloGreeter() {}

    @Override
    public String greet(String who) { return "hello " + who + " from acme " + Version.value(); }
}
