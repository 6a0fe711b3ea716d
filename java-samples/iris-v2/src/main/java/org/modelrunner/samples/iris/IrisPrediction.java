package org.modelrunner.samples.iris;

/** The predicted species and one probability per class (setosa, versicolor, virginica). */
public class IrisPrediction {
    public String species;
    public double[] probabilities;

    public IrisPrediction() {}

    public IrisPrediction(String species, double[] probabilities) {
        this.species = species;
        this.probabilities = probabilities;
    }
}
