package clash.message;

public class Outer {
    public static class Inner { public String text; }
}
