package org.modelrunner.samples.iris;

/** Version 2 of iris: the same classifier, answering with the "Iris-" labels of the UCI data set. */
final class Labels {
    private Labels() {}

    static final String[] NAMES = {"Iris-setosa", "Iris-versicolor", "Iris-virginica"};
}
