package org.modelrunner.tests.required;

/** Methods whose inputs show each case of required fields in generated contracts. */
public class Underwriter {
    public double score(Applicant a) {
        double floor = a.address() == null ? 0 : a.address().floor();
        return a.age() * 0.5 + a.income() / 1000 + floor;
    }

    /** base and years are primitives (required); bonus is boxed, so it may be null (not required). */
    public double rate(double base, int years, Double bonus) {
        return base * years + (bonus == null ? 0 : bonus);
    }

    public double total(java.util.List<Loan> loans) {
        return loans.stream().mapToDouble(Loan::amount).sum();
    }

    public String label(Point p) {
        return p.x + "," + p.y;
    }
}
