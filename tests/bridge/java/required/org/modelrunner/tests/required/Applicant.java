package org.modelrunner.tests.required;

import java.util.List;

/** A record: its primitive components (age, income) cannot be absent; city, address and debts can. */
public record Applicant(int age, double income, String city, Address address, List<Double> debts) {}
