package clash.message;

/** Its contract generates fine; its constructor fails (onboarding must show the generated contract). */
public class Broken {
    public Broken() { throw new IllegalStateException("no model file"); }

    public Score score(Applicant a) { return null; }
}
