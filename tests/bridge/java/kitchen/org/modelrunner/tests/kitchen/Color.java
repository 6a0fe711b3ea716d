package org.modelrunner.tests.kitchen;

public enum Color { RED, GREEN, BLUE }
