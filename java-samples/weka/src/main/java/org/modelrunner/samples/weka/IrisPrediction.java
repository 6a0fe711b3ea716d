package org.modelrunner.samples.weka;

/** The predicted species and one probability per class (setosa, versicolor, virginica). */
public class IrisPrediction {
    private String species;
    private double[] probabilities;

    public IrisPrediction() {
    }

    public IrisPrediction(String species, double[] probabilities) {
        this.species = species;
        this.probabilities = probabilities;
    }

    public String getSpecies() {
        return species;
    }

    public void setSpecies(String species) {
        this.species = species;
    }

    public double[] getProbabilities() {
        return probabilities;
    }

    public void setProbabilities(double[] probabilities) {
        this.probabilities = probabilities;
    }
}
