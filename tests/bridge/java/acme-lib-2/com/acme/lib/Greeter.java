package com.acme.lib;

/** A service interface: implementations are found with java.util.ServiceLoader (META-INF/services). */
public interface Greeter {
    String greet(String who);
}
