package clash.message;

public class Other {
    public static class Inner { public int count; }
}
