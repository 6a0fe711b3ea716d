package org.modelrunner.tests.required;

/** A record met only inside a list: amount is required in each element. */
public record Loan(double amount, String bank) {}
