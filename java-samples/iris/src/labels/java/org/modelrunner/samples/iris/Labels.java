package org.modelrunner.samples.iris;

/** Class names, in the order of the classifier's weights (iris-v2 compiles the same classifier with its own). */
final class Labels {
    private Labels() {}

    static final String[] NAMES = {"setosa", "versicolor", "virginica"};
}
