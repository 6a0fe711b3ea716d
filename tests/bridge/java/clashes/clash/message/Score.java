package clash.message;

public class Score {
    public double value;
    public Applicant applicant;
}
