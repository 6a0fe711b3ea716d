package clash.message.a;

public class Point { public double x; public double y; }
