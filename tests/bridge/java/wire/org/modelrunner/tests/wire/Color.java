package org.modelrunner.tests.wire;

public enum Color { RED, GREEN, BLUE }
