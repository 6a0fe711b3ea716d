package org.modelrunner.tests.required;

/** A record inside a record: floor is required whenever an address is sent. */
public record Address(String zip, int floor) {}
