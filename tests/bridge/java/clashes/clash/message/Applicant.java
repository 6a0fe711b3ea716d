package clash.message;

public record Applicant(String name, int age) {}
