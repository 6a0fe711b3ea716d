package org.modelrunner.samples.iris;

/** One flower, measured in centimetres (a plain bean: public no-arg constructor, getters and setters). */
public class IrisInput {
    private double sepalLength;
    private double sepalWidth;
    private double petalLength;
    private double petalWidth;

    public IrisInput() {}

    public IrisInput(double sepalLength, double sepalWidth, double petalLength, double petalWidth) {
        this.sepalLength = sepalLength;
        this.sepalWidth = sepalWidth;
        this.petalLength = petalLength;
        this.petalWidth = petalWidth;
    }

    public double getSepalLength() { return sepalLength; }
    public void setSepalLength(double v) { sepalLength = v; }
    public double getSepalWidth() { return sepalWidth; }
    public void setSepalWidth(double v) { sepalWidth = v; }
    public double getPetalLength() { return petalLength; }
    public void setPetalLength(double v) { petalLength = v; }
    public double getPetalWidth() { return petalWidth; }
    public void setPetalWidth(double v) { petalWidth = v; }

    /** The features in the order the classifier's weights use. */
    double[] features() { return new double[] {sepalLength, sepalWidth, petalLength, petalWidth}; }
}
